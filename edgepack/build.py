"""The one orchestrator: config -> model -> per target (passes, gate, wrap, vendor, package, sign).

Each stage takes the previous stage's typed result. Targets are independent: a
failure in one is recorded against it and the others still build. Nothing partial is
left in the output directory: a target is staged in a hidden temporary directory,
packaged to a hidden file, verified, and only then renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import __version__
from .artifact_files import read_artifact
from .build_inputs import BuildInputs, Progress
from .cache import BuildCache, sha256_file, sha256_tree
from .config import Project, load_project
from .container_image import fit_profile_to_base, resolve_base_image
from .errors import ConfigError, EdgepackError, PackagingError
from .host_run import host_predictor, predict_batched
from .manifest import ManifestInputs, manifest_dict, write_manifest
from .optimize import MODEL_FILE_NAMES, passes_code_digest
from .packaging.lambda_layer import LayerSplit, layer_files, layer_result, package_function
from .resources import runtime_package_dir, templates_dir
from .runtime.manifest import MANIFEST_FILE, ModelSection, RuntimeSection
from .runtime.sample import SAMPLE_FILE, write_sample
from .target_outputs import with_outputs
from .targets import TargetProfile
from .variants import Chosen, choose_variant, float_layer_records, given_up, target_thresholds
from .versions import tool_versions

__all__ = ["BuildResult", "TargetResult", "build", "host_predictor"]

_HOOKS_MODULE = "edgepack_user_hooks"
_ARTIFACT_SUFFIX = {
    "lambda-zip": ".zip",
    "lambda-image": ".tar.gz",
    "ota-bundle": ".bundle.tar.gz",
    "oci-image": ".tar.gz",
}


@dataclass(frozen=True)
class TargetResult:
    target: str
    ok: bool
    artifact: Path | None = None
    variant: str | None = None
    format: str | None = None
    precision: str | None = None
    model_bytes: int | None = None
    artifact_bytes: int | None = None
    unzipped_bytes: int | None = None
    fidelity: dict[str, Any] = field(default_factory=dict)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    backend: str | None = None
    plan: str | None = None  # the target's plan for the source format: "default" or "sources.<format>"
    float_layers: int = 0  # layers a mixed-precision variant kept in float
    given_up: str = ""  # the variants tried before the shipped one, and why they failed
    mixed_cost: dict[str, Any] = field(default_factory=dict)  # a mixed model's size/latency vs full int8
    cached: bool = False
    image: dict[str, Any] | None = None  # container targets: their image, build context and note
    layer: dict[str, Any] | None = None  # Lambda targets with function.layer: the layer zip
    deploy: str | None = None  # Lambda targets: the directory with serverless.yml and template.yaml
    seconds: float = 0.0
    error: str | None = None
    exit_code: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items()}
        out["artifact"] = str(self.artifact) if self.artifact else None
        return out


@dataclass(frozen=True)
class BuildResult:
    project: str
    version: str
    results: list[TargetResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def exit_code(self) -> int:
        return next((r.exit_code for r in self.results if not r.ok), 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "version": self.version,
            "ok": self.ok,
            "targets": [r.to_dict() for r in self.results],
        }


# -- entry point --------------------------------------------------------------------


def build(
    project_path: Path | str,
    out_dir: Path | str,
    targets: list[str] | None = None,
    *,
    cache: BuildCache | None = None,
    progress: Progress | None = None,
    key_path: Path | None = None,
    epoch: int | None = None,
    base_image: Path | None = None,
) -> BuildResult:
    """Build the project's targets (or the named ones) into ``out_dir``.

    Config, model and data errors raise before any target starts. Target failures are
    returned in the result, one per target, and leave nothing for that target in ``out_dir``.
    """
    say = progress or (lambda _m: None)
    out = Path(out_dir)
    _check_output_dir(out)
    project = load_project(project_path, targets)
    _check_pass_chains(project)

    from .data import load_dataset
    from .model.loader import load_model
    from .packaging.archive import source_date_epoch
    from .signing.keys import load_signer

    cache = cache or BuildCache.default()
    epoch = source_date_epoch() if epoch is None else epoch
    signer = _signer(project, key_path, load_signer)
    base = resolve_base_image(project, base_image, cache)

    pf = project.file
    say(f"loading model {pf.model.path}")
    source = load_model(project.model_path, pf.model.format, pf.model.inputs, pf.model.outputs)
    signature = source.artifact.signature
    calibration = validation = None
    if pf.calibration is not None:
        calibration = load_dataset(pf.calibration, project.root, signature, _where(project, "calibration"))
    if pf.validation is not None:
        validation = load_dataset(
            pf.validation, project.root, signature, _where(project, "validation"), classes=project.classes
        )
    reference = None
    if validation is not None:
        say(f"running the original model on {validation.size} validation samples")
        reference = predict_batched(source.predict, validation.inputs)

    # Made only now: a build refused for its config, model or data leaves no directory behind.
    out.mkdir(parents=True, exist_ok=True)
    shared = BuildInputs(
        project=project,
        source=source,
        model_sha256=sha256_tree(project.model_path),
        calibration=calibration,
        validation=validation,
        reference_outputs=reference,
        signer=signer,
        cache=cache,
        epoch=epoch,
        progress=say,
        tools=tool_versions(),
        base_image=base,
    )
    results = []
    for profile in project.targets:
        started = time.perf_counter()
        try:
            result = _build_target(shared, fit_profile_to_base(profile, base, project.file.function), out)
        except EdgepackError as e:
            say(f"[{profile.name}] failed: {e.hint()}")
            result = TargetResult(
                target=profile.name,
                ok=False,
                error=_name_target(profile.name, e.hint()),
                exit_code=e.exit_code,
                attempts=getattr(e, "attempts", []),
            )
        results.append(replace(result, seconds=round(time.perf_counter() - started, 2)))
    return BuildResult(project=project.name, version=project.version, results=results)


def _check_output_dir(out: Path) -> None:
    """Before any work: the output directory exists or can be made, and takes files.
    Nothing is created here, so a build refused later leaves no empty directory behind."""
    if out.exists() and not out.is_dir():
        raise ConfigError("the output path exists and is not a directory", where=f"--out {out}")
    existing = out.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"cannot create a directory under {existing}: it is a file", where=f"--out {out}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{existing} is not writable", where=f"--out {out}")


def _name_target(target: str, hint: str) -> str:
    """Every target failure names its target, once."""
    return hint if hint.startswith(f"target {target}") else f"target {target}: {hint}"


def _where(project: Project, field_path: str) -> str:
    return f"{project.config_path}: {field_path}"


def _signer(project: Project, key_path: Path | None, load_signer: Callable[..., Any]) -> Any:
    from .config import SigningSpec

    if key_path is not None:
        return load_signer(SigningSpec(key=str(Path(key_path).resolve())), project.root)
    if project.file.signing is None:
        raise ConfigError(
            "every artifact is signed: add signing.key (see `edgepack keys generate`) or pass --key",
            where=_where(project, "signing"),
        )
    return load_signer(project.file.signing, project.root)


_BACKEND_FORMAT = {"litert": "tflite", "onnxruntime": "onnx", "openvino": "openvino"}


def _check_pass_chains(project: Project) -> None:
    """Check every variant's passes exist, take the format they are given, parse their
    configs, and end with a model the target's backend runs, before anything runs."""
    from .passes import get_pass

    for profile in project.targets:
        target_thresholds(project, profile)  # a bad per-target threshold is refused before any work
        runs = _BACKEND_FORMAT[profile.backend]
        for vi, variant in enumerate(profile.variants):
            fmt: str | None = profile.source_format  # load_target resolved it (model.format or the path)
            where = f"target {profile.name}: variants.{vi}({variant.name})"
            for pi, spec in enumerate(variant.passes):
                p = get_pass(spec.name)
                p.parse_config(spec.config, f"{where}.passes.{pi}")
                if fmt not in p.accepts:
                    raise ConfigError(
                        f"a {fmt} model has no path to this target's {profile.backend} runtime: "
                        f"pass {spec.name} takes {', '.join(sorted(p.accepts))} models",
                        where=f"{where}.passes.{pi}",
                    )
                fmt = p.produces
            if fmt != runs:
                raise ConfigError(
                    f"variant {variant.name} ends with a {fmt} model; "
                    f"the target's {profile.backend} runtime runs {runs} models",
                    where=where,
                )


# -- one target ---------------------------------------------------------------------


def _build_target(shared: BuildInputs, profile: TargetProfile, out: Path) -> TargetResult:
    say = shared.progress
    final = (
        out
        / f"{shared.project.name}-{shared.project.version}-{profile.name}{_ARTIFACT_SUFFIX[profile.packager]}"
    )
    finals = [final, *layer_files(shared.project, profile, final)]
    artifact_key = _artifact_key(shared, profile)
    cached = shared.cache.get_dir("artifacts", artifact_key)
    if cached is not None and all((cached / f.name).is_file() for f in finals):
        say(f"[{profile.name}] unchanged: reusing the cached artifact")
        for f in finals:
            _place(cached / f.name, f, shared)
        result = replace(_result_from_artifact(profile, final, cached=True), layer=layer_result(finals))
        return with_outputs(result, final, shared, profile)

    chosen = choose_variant(shared, profile)
    staging = Path(tempfile.mkdtemp(prefix=f".{profile.name}-staging-", dir=out))
    partial = out / f".{final.name}.partial"
    layer = LayerSplit.for_target(shared.project, profile, final)
    try:
        package_report = _stage_and_package(shared, profile, chosen, staging, partial, layer)
        pending = [*([(layer.partial, layer.final)] if layer else []), (partial, final)]
        for p, f in pending:
            _verify(p, f, shared)
        for p, f in pending:
            os.replace(p, f)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        partial.unlink(missing_ok=True)
        if layer is not None:
            layer.cleanup()
    with tempfile.TemporaryDirectory(dir=out, prefix=".cache-") as tmp:
        for f in finals:
            shutil.copy2(f, Path(tmp) / f.name)
        shared.cache.put_dir("artifacts", artifact_key, Path(tmp))
    say(f"[{profile.name}] wrote {', '.join(str(f) for f in finals)}")
    result = _result_from_artifact(profile, final, cached=False, package_report=package_report)
    return with_outputs(replace(result, layer=layer_result(finals)), final, shared, profile)


def _artifact_key(shared: BuildInputs, profile: TargetProfile) -> str:
    project = shared.project
    hooks = project.file.hooks
    return shared.cache.key(
        kind="artifact",
        edgepack=__version__,
        model=shared.model_sha256,
        project=project.file.model_dump(mode="json"),
        profile=profile.model_dump(mode="json"),
        calibration=shared.calibration.digest if shared.calibration is not None else None,
        validation=shared.validation.digest if shared.validation is not None else None,
        hooks=sha256_file(project.resolve(hooks)) if hooks else None,
        runtime=sha256_tree(runtime_package_dir()),
        passes_code=passes_code_digest(),
        templates=sha256_tree(templates_dir() / profile.templates),
        tools=shared.tools,
        epoch=shared.epoch,
        signer=shared.signer.keyid,
    )


def _place(src: Path, final: Path, shared: BuildInputs) -> None:
    partial = final.with_name(f".{final.name}.partial")
    try:
        shutil.copyfile(src, partial)
        _verify(partial, final, shared)
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)


def _verify(path: Path, final: Path, shared: BuildInputs) -> None:
    from .runtime.trust.reader import kind_of, verify_and_extract
    from .signing.keys import load_public_key_pem

    verify_and_extract(path, None, [load_public_key_pem(shared.signer.public_key_pem())], kind=kind_of(final))


# -- staging, packaging, signing ----------------------------------------------------


def _stage_and_package(
    shared: BuildInputs,
    profile: TargetProfile,
    chosen: Chosen,
    staging: Path,
    partial: Path,
    layer: LayerSplit | None = None,
) -> Any:
    from .abi_audit import audit_tree
    from .render import render_template_set
    from .signing.attestation import attest_tree
    from .vendoring import vendor

    project = shared.project
    say = shared.progress
    variant, optimized, fidelity = chosen.variant, chosen.model, chosen.fidelity

    model_dir = staging / "model"
    model_dir.mkdir()
    for f in optimized.files():
        shutil.copyfile(f, model_dir / f.name)
    model_file = model_dir / MODEL_FILE_NAMES[optimized.format]
    shutil.copytree(
        runtime_package_dir(), staging / "edgepack_runtime", ignore=shutil.ignore_patterns("__pycache__")
    )
    hooks_module = None
    if project.file.hooks:
        # load_project has checked it is a .py file that compiles (hooks_check).
        shutil.copyfile(project.resolve(project.file.hooks), staging / f"{_HOOKS_MODULE}.py")
        hooks_module = _HOOKS_MODULE

    render_template_set(
        profile.templates,
        staging,
        {
            "edgepack_version": __version__,
            "project_name": project.name,
            "project_version": project.version,
            "target_name": profile.name,
        },
    )
    packages = ", ".join(profile.runtime_packages)
    say(f"[{profile.name}] vendoring {packages} for {profile.arch} cp{profile.python}")
    vendored = vendor(profile, layer.python_dir if layer else staging, shared.cache, say)
    say(f"[{profile.name}] auditing shared objects for {profile.arch}, glibc <= {profile.glibc}")
    for tree in (staging, *([layer.python_dir] if layer else [])):
        audit_tree(tree, profile.arch, profile.glibc or "", python=profile.python)

    model_section = ModelSection(
        file=model_file.relative_to(staging).as_posix(),
        format=optimized.format,
        sha256=sha256_file(model_file),
        # What the file holds (its ops counted), not what the passes asked for.
        precision=chosen.precision["precision"],
        signature=optimized.signature,
        native_inputs=optimized.native_inputs,
        native_outputs=optimized.native_outputs,
    )
    source_file = project.model_path
    manifest = manifest_dict(
        ManifestInputs(
            name=project.name,
            version=project.version,
            target=profile,
            model=model_section,
            model_details={
                **dict(optimized.details),
                "size_bytes": sum(f.stat().st_size for f in optimized.files()),
                "ops": {k: v for k, v in chosen.precision.items() if k != "precision"},
                "float_layers": len(float_layer_records(optimized.details)),
                "requested_precision": optimized.precision,
            },
            variant=variant.name,
            source={
                "file": source_file.name,
                "format": shared.source.artifact.format,
                "sha256": shared.model_sha256,
                # The target's plan for this source format: "default" or "sources.<format>".
                "plan": profile.plan,
            },
            runtime=RuntimeSection(backend=profile.backend, settings=dict(profile.runtime_settings)),
            entrypoint="handler.handler" if profile.kind == "lambda" else None,
            packages=[p.to_dict() for p in vendored.packages],
            trimmed=list(vendored.trimmed),
            fidelity=fidelity,
            sample={
                **write_sample(staging / SAMPLE_FILE, chosen.sample_inputs, chosen.sample_outputs),
                "sha256": sha256_file(staging / SAMPLE_FILE),
            },
            hooks=hooks_module,
            telemetry={
                **project.file.telemetry.model_dump(mode="json"),
                "service": project.file.telemetry.service or project.name,
            },
            epoch=shared.epoch,
            tool_versions=shared.tools,
            extra_runtime=_trt_cache_record(profile, model_section.sha256),
            function=project.file.function.model_dump(mode="json") if profile.kind == "lambda" else None,
        )
    )
    write_manifest(staging, manifest)
    if profile.kind == "lambda":
        from .bytecode import precompile_init_modules

        layers = [layer.python_dir] if layer else []
        bytecode = precompile_init_modules(staging, profile, "handler.handler", shared.cache, say, layers)
        manifest["runtime"]["bytecode"] = bytecode.to_dict()
        if layer is not None:  # signed and zipped now: the function's manifest names its digest
            manifest["runtime"]["layer"] = layer.finish(shared, profile, vendored, staging)
        write_manifest(staging, manifest)
    attest_tree(staging, shared.signer, _provenance(shared, profile, vendored))
    say(f"[{profile.name}] packaging ({profile.packager}{', layer split' if layer else ''})")
    if profile.packager == "lambda-zip":
        return package_function(staging, partial, profile.limits, shared.epoch, layer)
    return _package(profile, staging, partial, shared.epoch)


def _trt_cache_record(profile: TargetProfile, model_sha256: str) -> dict[str, Any]:
    """How the device keys its TensorRT engine cache, so no cache serves another model's engine.

    The TensorRT version and the GPU's compute capability are only known on the device,
    which completes the key at load time (``trt_cache.engine_cache_key``)."""
    from .runtime.trt_cache import precision_from_trt_options

    for provider in profile.runtime_settings.get("providers") or []:
        options = provider.get("options") or {}
        if provider.get("name") == "TensorrtExecutionProvider" and options.get("trt_engine_cache_enable"):
            return {
                "trt_engine_cache": {
                    "model_sha256": model_sha256,
                    "precision": profile.runtime_settings.get("precision")
                    or precision_from_trt_options(options),
                    "trt_version": "detected on the device",
                    "compute_capability": "detected on the device",
                    "key": "sha256 over model_sha256, trt_version, compute_capability, precision",
                    "base_dir": options.get("trt_engine_cache_path"),
                }
            }
    return {}


def _provenance(shared: BuildInputs, profile: TargetProfile, vendored: Any) -> Any:
    from .signing.attestation import Provenance

    project = shared.project
    data = {}
    if shared.calibration is not None:
        data["calibration"] = shared.calibration.digest
    if shared.validation is not None:
        data["validation"] = shared.validation.digest
    return Provenance(
        project=project.name,
        version=project.version,
        target=profile.name,
        model_name=project.model_path.name,
        model_sha256=shared.model_sha256,
        config_sha256=sha256_file(project.config_path),
        data_sha256=data,
        packages=[p.to_dict() for p in vendored.packages],
        edgepack_version=__version__,
        epoch=shared.epoch,
    )


def _package(profile: TargetProfile, staging: Path, partial: Path, epoch: int) -> Any:
    if profile.packager == "lambda-zip":
        from .packaging.lambda_zip import package_lambda

        return package_lambda(staging, partial, profile.limits, epoch)
    if profile.packager in ("ota-bundle", "oci-image", "lambda-image"):  # images: from the verified bundle
        from .packaging.bundle import write_bundle

        return write_bundle(staging, partial, epoch)
    raise PackagingError(
        f"packager {profile.packager} is not available in this edgepack version",
        where=f"target {profile.name}",
    )


# -- results ------------------------------------------------------------------------


def _result_from_artifact(
    profile: TargetProfile, artifact: Path, *, cached: bool, package_report: Any = None
) -> TargetResult:
    sizes, files = read_artifact(artifact, lambda name: name == MANIFEST_FILE)
    manifest = json.loads(files[MANIFEST_FILE])
    model = manifest["model"]
    fidelity = manifest.get("fidelity", {})
    return TargetResult(
        target=profile.name,
        ok=True,
        artifact=artifact,
        variant=model.get("variant"),
        format=model["format"],
        precision=model["precision"],
        model_bytes=model.get("details", {}).get("size_bytes"),
        artifact_bytes=artifact.stat().st_size,
        unzipped_bytes=sum(sizes.values()),
        fidelity={k: v for k, v in fidelity.items() if k != "attempts"},
        attempts=list(fidelity.get("attempts", [])),
        backend=manifest["runtime"]["backend"],
        plan=model.get("source", {}).get("plan"),
        float_layers=int(model.get("details", {}).get("float_layers") or 0),
        given_up=given_up(list(fidelity.get("attempts", []))),
        mixed_cost=dict(fidelity.get("mixed_cost") or {}),
        cached=cached,
    )
