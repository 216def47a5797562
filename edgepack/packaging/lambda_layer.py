"""The Lambda layer split: the vendored runtime packages in a layer zip of their own.

With ``function.layer: true`` a Lambda target ships two signed artifacts::

    <name>-<version>-<target>.zip         model, handler.py, edgepack_runtime, hooks, sample,
                                          edgepack.json, attestation.dsse.json
    <name>-<version>-<target>.layer.zip   python/<vendored packages>, edgepack.json,
                                          attestation.dsse.json

Lambda extracts a layer to ``/opt`` and puts ``/opt/python`` on ``sys.path`` after the
task root, so the packages go under ``python/``. The layer's manifest and attestation sit
at its root (outside ``python/``, so nothing importable) and it verifies with
``verify_artifact`` like any artifact; its manifest says ``"layer": true``.

The function's manifest names the layer in ``runtime.layer``: ``file`` (the layer zip's
name, a sibling of the function zip), ``sha256`` (of the layer zip's bytes), ``name`` (the
Lambda layer name, ``<project>-<target>-deps``) and ``content_sha256`` (of the ``python/``
tree). Nothing in the layer depends on the model, the config or the hooks, so a
model-only rebuild gives a byte-identical layer zip; a version bump changes the layer's
manifest (and so its zip digest) but not ``content_sha256``, which is what says whether
a published layer version can be reused.

Lambda counts a function and its layers together against the 250 MB unzipped limit;
each zip must stay within the 50 MB direct-upload limit on its own.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..cache import sha256_file, sha256_tree
from ..errors import BudgetExceededError
from ..manifest import iso_time, write_manifest
from ..runtime.manifest import MANIFEST_SCHEMA
from ..signing.attestation import Provenance, attest_tree
from ..targets import Limits, TargetProfile
from .archive import iter_tree
from .lambda_zip import PackageReport, package_lambda, package_of

LAYER_SUFFIX = ".layer.zip"
PYTHON_DIR = "python"  # Lambda puts /opt/python on sys.path for every Python runtime
LAYER_PACKAGER = "lambda-layer"
_LAYER_NAME_MAX = 140  # Lambda's LayerName: [A-Za-z0-9_-]+, at most 140 characters
_MIB = 1024 * 1024
# The next step past Lambda's unzipped limit: no split gets a function under it.
IMAGE_STEP = (
    "too big for a zip, layers included: Lambda's container-image form takes up to 10 GB; "
    "set function.package: image (with --base-image) to build it"
)


def splits_layer(project: Any, profile: TargetProfile) -> bool:
    """Whether this target ships its vendored packages in a layer (``function.layer`` on Lambda)."""
    return profile.kind == "lambda" and bool(project.file.function.layer)


def layer_zip_name(function_zip: str) -> str:
    """``digits-1.0.0-lambda-x86_64.zip`` -> ``digits-1.0.0-lambda-x86_64.layer.zip``."""
    return function_zip.removesuffix(".zip") + LAYER_SUFFIX


def layer_files(project: Any, profile: TargetProfile, function_final: Path) -> list[Path]:
    """The layer zip a target writes beside its function zip: one path, or none without a split."""
    return (
        [function_final.with_name(layer_zip_name(function_final.name))]
        if splits_layer(project, profile)
        else []
    )


def layer_result(finals: list[Path]) -> dict[str, Any] | None:
    """For the build's summary (``TargetResult.layer``): the layer zip of ``[function, layer]``."""
    if len(finals) < 2:
        return None
    with zipfile.ZipFile(finals[1]) as zf:
        unzipped = sum(info.file_size for info in zf.infolist())
    return {
        "artifact": str(finals[1]),
        "artifact_bytes": finals[1].stat().st_size,
        "unzipped_bytes": unzipped,
    }


def layer_name(project: str, target: str) -> str:
    """The Lambda layer name, ``<project>-<target>-deps``, in the characters Lambda allows."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{project}-{target}-deps")[:_LAYER_NAME_MAX]


@dataclass(frozen=True)
class LayerProvenance(Provenance):
    """A layer's provenance: only the runtime packages went into it (no model, config or data),
    so a model-only rebuild attests the same statement."""

    def resolved_dependencies(self) -> list[dict[str, Any]]:
        return [d for d in super().resolved_dependencies() if d["annotations"]["role"] == "runtime-package"]


@dataclass
class LayerSplit:
    """One Lambda target's layer: its staging tree, its partial zip and where it ends up."""

    final: Path  # out/<name>-<version>-<target>.layer.zip
    root: Path  # staging tree: python/..., then edgepack.json and attestation.dsse.json
    name: str
    report: PackageReport | None = None

    @classmethod
    def for_target(cls, project: Any, profile: TargetProfile, function_final: Path) -> LayerSplit | None:
        """The split for ``profile`` when the project asks for one, else None. Makes the (hidden)
        staging directory beside the function's; ``cleanup()`` removes it."""
        if not splits_layer(project, profile):
            return None
        final = function_final.with_name(layer_zip_name(function_final.name))
        root = Path(tempfile.mkdtemp(prefix=f".{profile.name}-layer-", dir=function_final.parent))
        (root / PYTHON_DIR).mkdir()
        return cls(final=final, root=root, name=layer_name(project.name, profile.name))

    @property
    def python_dir(self) -> Path:
        """Where the vendored packages go: ``/opt/python`` on Lambda."""
        return self.root / PYTHON_DIR

    @property
    def partial(self) -> Path:
        return self.final.with_name(f".{self.final.name}.partial")

    def finish(
        self, shared: Any, profile: TargetProfile, vendored: Any, function_root: Path
    ) -> dict[str, Any]:
        """Write the layer's manifest, sign it and zip it to ``partial``; return ``runtime.layer``
        for the function's manifest. Call after the function's init has run (and compiled the
        layer's modules it imported)."""
        project = shared.project
        check_combined(function_root, self.root, profile.limits)  # early; exact in package_function
        content = sha256_tree(self.python_dir)
        write_manifest(
            self.root, layer_manifest(project, profile, self.name, content, vendored, shared.epoch)
        )
        attest_tree(
            self.root,
            shared.signer,
            LayerProvenance(
                project=project.name,
                version=project.version,
                target=profile.name,
                model_name="",
                model_sha256="",
                config_sha256="",
                packages=[p.to_dict() for p in vendored.packages],
                epoch=shared.epoch,
            ),
        )
        self.report = package_lambda(self.root, self.partial, Limits(), shared.epoch)
        limit = profile.limits.zipped_bytes
        if limit is not None and self.report.zipped_bytes > limit:
            sizes: Counter[str] = Counter()
            with zipfile.ZipFile(self.partial) as zf:
                for info in zf.infolist():
                    sizes[_package(info.filename)] += info.compress_size
            self.partial.unlink(missing_ok=True)
            raise BudgetExceededError(
                f"layer zip is {self.report.zipped_bytes / _MIB:.1f} MB, over the {limit / _MIB:.1f} MB "
                f"direct-upload limit; largest: {_largest(sizes)}"
            )
        return {
            "file": self.final.name,
            "sha256": sha256_file(self.partial),
            "name": self.name,
            "content_sha256": content,
            "path": PYTHON_DIR,
            "zipped_bytes": self.report.zipped_bytes,
            "unzipped_bytes": self.report.unzipped_bytes,
            "compatible_runtimes": [profile.lambda_runtime],
            "compatible_architectures": ["arm64" if profile.arch == "aarch64" else "x86_64"],
        }

    def package_function(self, staging: Path, dest: Path, limits: Limits, epoch: int) -> PackageReport:
        """Zip the function, refusing it when it and the layer together unzip past the limit."""
        assert self.report is not None, "finish() the layer first"
        check_combined(staging, self.root, limits)
        return package_lambda(staging, dest, limits.model_copy(update={"unzipped_bytes": None}), epoch)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.partial.unlink(missing_ok=True)


def package_function(
    staging: Path, dest: Path, limits: Limits, epoch: int, layer: LayerSplit | None = None
) -> PackageReport:
    """Zip a Lambda function (with its layer's share of the limits when split). Over a limit,
    the one-line error ends with the next step: the layer split for the 50 MB zip limit, the
    container-image form for the 250 MB unzipped one (no split gets under that)."""
    try:
        if layer is not None:
            return layer.package_function(staging, dest, limits, epoch)
        return package_lambda(staging, dest, limits, epoch)
    except BudgetExceededError as e:
        if IMAGE_STEP in e.message:
            raise
        if "unzip" in e.message:
            step = IMAGE_STEP
        elif layer is None:
            step = "set function.layer: true to ship the runtime packages in a layer zip of their own"
        else:
            step = "trim the runtime packages (the target's trim rules) or use a smaller model"
        raise BudgetExceededError(f"{e.message}; {step}", where=e.where) from e


def layer_manifest(
    project: Any, profile: TargetProfile, name: str, content_sha256: str, vendored: Any, epoch: int
) -> dict[str, Any]:
    """The layer's ``edgepack.json``: what ``verify_artifact`` requires (schema, name, numeric
    version) and what the layer is; nothing about the model, so the model does not change it."""
    return {
        "schema": MANIFEST_SCHEMA,
        "name": project.name,
        "version": project.version,
        "layer": True,
        "target": {
            "name": profile.name,
            "kind": profile.kind,
            "arch": profile.arch,
            "python": profile.python,
            "lambda_runtime": profile.lambda_runtime,
            "glibc": profile.glibc,
            "platform_tags": profile.platform_tags,
            "packager": LAYER_PACKAGER,
        },
        "runtime": {
            "layer": {"name": name, "content_sha256": content_sha256, "path": PYTHON_DIR},
            "packages": [p.to_dict() for p in vendored.packages],
            "trimmed": list(vendored.trimmed),
        },
        "build": {
            "built_at": iso_time(epoch),
            "source_date_epoch": epoch,
            "edgepack_version": __version__,
        },
    }


def check_combined(function_root: Path, layer_root: Path, limits: Limits) -> None:
    """Lambda counts the function and its layers together against the unzipped limit."""
    if limits.unzipped_bytes is None:
        return
    sizes: Counter[str] = Counter()
    function_bytes = 0
    for name, path in iter_tree(function_root):
        size = path.stat().st_size
        sizes[package_of(name)] += size
        function_bytes += size
    layer_bytes = 0
    for name, path in iter_tree(layer_root):
        size = path.stat().st_size
        sizes[_package(name)] += size
        layer_bytes += size
    total = function_bytes + layer_bytes
    if total <= limits.unzipped_bytes:
        return
    raise BudgetExceededError(
        f"function {function_bytes / _MIB:.1f} MB + layer {layer_bytes / _MIB:.1f} MB unzip to "
        f"{total / _MIB:.1f} MB, over the {limits.unzipped_bytes / _MIB:.1f} MB unzipped limit "
        f"Lambda counts across a function and its layers; largest: {_largest(sizes)}; {IMAGE_STEP}"
    )


def _package(name: str) -> str:
    """The package a layer entry belongs to (``python/numpy/x.so`` -> ``numpy``)."""
    return package_of(name.removeprefix(f"{PYTHON_DIR}/"))


def _largest(sizes: Counter[str], shown: int = 5) -> str:
    ranked = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
    more = ", ..." if len(ranked) > shown else ""
    return ", ".join(f"{pkg} {n / _MIB:.1f} MB" for pkg, n in ranked[:shown]) + more
