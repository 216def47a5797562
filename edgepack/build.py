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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import __version__
from .artifact_files import read_artifact
from .build_inputs import BuildInputs, Progress, edgepack_code_digest
from .build_records import provenance, trt_cache_record
from .build_schedule import StageClock, TargetStages, pool_size, run_targets
from .cache import BuildCache, sha256_file, sha256_tree
from .config import Project, load_project
from .container_image import fit_profile_to_base, resolve_base_image
from .errors import ConfigError, EdgepackError, PackagingError
from .host_run import host_predictor
from .manifest import ManifestInputs, manifest_dict, write_manifest
from .optimize import MODEL_FILE_NAMES
from .packaging.lambda_layer import LayerSplit, layer_files, layer_result, package_function
from .pass_chains import check_pass_chains
from .resources import runtime_package_dir, templates_dir
from .runtime.hashing import copy_file_sha256
from .runtime.manifest import MANIFEST_FILE, ModelSection, RuntimeSection
from .runtime.sample import SAMPLE_FILE, write_sample
from .target_outputs import with_outputs
from .targets import TargetProfile
from .variants import Chosen, choose_variant, float_layer_records, given_up
from .vendoring import prefetch_packages
from .versions import tool_versions

__all__ = ["BuildResult", "TargetResult", "build", "host_predictor"]

_HOOKS_MODULE = "edgepack_user_hooks"
_DIGESTS_FILE = "sha256.json"  # beside a cached artifact: the digests of the bytes verified
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
    seconds: float = 0.0  # wall seconds of the target's own stages (they overlap other targets')
    stages: dict[str, float] = field(default_factory=dict)
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
    check_pass_chains(project)

    from .packaging.archive import source_date_epoch
    from .signing.keys import load_signer

    cache = cache or BuildCache.default()
    epoch = source_date_epoch() if epoch is None else epoch
    signer = _signer(project, key_path, load_signer)
    base = resolve_base_image(project, base_image, cache)
    shared = BuildInputs(
        project=project,
        model_sha256=sha256_tree(project.model_path),
        signer=signer,
        cache=cache,
        epoch=epoch,
        progress=say,
        tools=tool_versions(),
        base_image=base,
    )
    profiles = [fit_profile_to_base(p, base, project.file.function) for p in project.targets]

    def prepare() -> None:
        shared.load_all()
        # Made only now: a build refused for its config, model or data leaves no directory behind.
        out.mkdir(parents=True, exist_ok=True)

    def failed(profile: TargetProfile, e: EdgepackError) -> TargetResult:
        say(f"[{profile.name}] failed: {e.hint()}")
        return TargetResult(
            target=profile.name,
            ok=False,
            error=_name_target(profile.name, e.hint()),
            exit_code=e.exit_code,
            attempts=getattr(e, "attempts", []),
        )

    stages: TargetStages[_Converted, TargetResult] = TargetStages(
        reuse=lambda profile: _reuse(shared, profile, out),
        prepare=prepare,
        prefetch=lambda profile: prefetch_packages(profile, cache),
        convert=lambda profile: _convert(shared, profile),
        package=lambda profile, converted: _package_target(shared, profile, converted, out),
        failed=failed,
    )
    results = run_targets(profiles, stages, pool_size())
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


# -- one target ---------------------------------------------------------------------


def _final_paths(shared: BuildInputs, profile: TargetProfile, out: Path) -> list[Path]:
    """The target's artifact first, then what ships beside it (a Lambda layer zip)."""
    project = shared.project
    final = out / f"{project.name}-{project.version}-{profile.name}{_ARTIFACT_SUFFIX[profile.packager]}"
    return [final, *layer_files(project, profile, final)]


def _reuse(shared: BuildInputs, profile: TargetProfile, out: Path) -> Callable[[], TargetResult] | None:
    """A cached target's placement, asked from file digests alone (nothing loaded or run)."""
    finals = _final_paths(shared, profile, out)
    cached = shared.cache.get_dir("artifacts", _artifact_key(shared, profile))
    names = [_DIGESTS_FILE, *(f.name for f in finals)]
    if cached is None or not all((cached / name).is_file() for name in names):
        return None
    out.mkdir(parents=True, exist_ok=True)

    def place() -> TargetResult:
        clock = StageClock(profile.name, shared.progress)
        shared.progress(f"[{profile.name}] unchanged: reusing the cached artifact")
        with clock.stage("reuse"):
            for f in finals:
                _place(cached / f.name, f)
            result = replace(
                _result_from_artifact(profile, finals[0], cached=True), layer=layer_result(finals)
            )
            result = with_outputs(result, finals[0], shared, profile)
        return _timed(result, clock)

    return place


@dataclass(frozen=True)
class _Converted:
    chosen: Chosen
    clock: StageClock


def _convert(shared: BuildInputs, profile: TargetProfile) -> _Converted:
    clock = StageClock(profile.name, shared.progress)
    with clock.stage("convert"):
        chosen = choose_variant(shared, profile)
    return _Converted(chosen, clock)


def _package_target(
    shared: BuildInputs, profile: TargetProfile, converted: _Converted, out: Path
) -> TargetResult:
    finals = _final_paths(shared, profile, out)
    final, clock = finals[0], converted.clock
    staging = Path(tempfile.mkdtemp(prefix=f".{profile.name}-staging-", dir=out))
    partial = out / f".{final.name}.partial"
    layer = LayerSplit.for_target(shared.project, profile, final)
    try:
        package_report = _stage_and_package(shared, profile, converted.chosen, staging, partial, layer, clock)
        pending = [*([(layer.partial, layer.final)] if layer else []), (partial, final)]
        with clock.stage("verify"):
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
        digests = {f.name: copy_file_sha256(f, Path(tmp) / f.name) for f in finals}
        (Path(tmp) / _DIGESTS_FILE).write_text(json.dumps(digests, sort_keys=True), encoding="utf-8")
        shared.cache.put_dir("artifacts", _artifact_key(shared, profile), Path(tmp))
    shared.progress(f"[{profile.name}] wrote {', '.join(str(f) for f in finals)}")
    result = _result_from_artifact(profile, final, cached=False, package_report=package_report)
    with clock.stage("outputs"):
        result = with_outputs(replace(result, layer=layer_result(finals)), final, shared, profile)
    return _timed(result, clock)


def _timed(result: TargetResult, clock: StageClock) -> TargetResult:
    return replace(result, stages=dict(clock.seconds), seconds=round(sum(clock.seconds.values()), 2))


def _artifact_key(shared: BuildInputs, profile: TargetProfile) -> str:
    project = shared.project
    hooks = project.file.hooks
    return shared.cache.key(
        kind="artifact",
        edgepack=__version__,
        code=edgepack_code_digest(),  # the runtime it ships and the passes are part of it
        model=shared.model_sha256,
        project=project.file.model_dump(mode="json"),
        profile=profile.model_dump(mode="json"),
        calibration=shared.data_digest("calibration"),
        validation=shared.data_digest("validation"),
        hooks=sha256_file(project.resolve(hooks)) if hooks else None,
        templates=sha256_tree(templates_dir() / profile.templates),
        tools=shared.tools,
        epoch=shared.epoch,
        signer=shared.signer.keyid,
    )


def _place(src: Path, final: Path) -> None:
    """Copy a cached artifact into place: its bytes must be those verified when it was built
    (recorded beside it), else the entry is dropped and the target fails, to be rebuilt."""
    partial = final.with_name(f".{final.name}.partial")
    recorded = json.loads((src.parent / _DIGESTS_FILE).read_text(encoding="utf-8"))
    try:
        if copy_file_sha256(src, partial) != recorded.get(final.name):
            shutil.rmtree(src.parent, ignore_errors=True)
            raise PackagingError(
                f"the cached {final.name} changed since it was verified; its cache entry is "
                "removed: build again",
                where=str(src),
            )
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
    layer: LayerSplit | None,
    clock: StageClock,
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
    with clock.stage("vendor"):
        vendored = vendor(profile, layer.python_dir if layer else staging, shared.cache, say)
    say(f"[{profile.name}] auditing shared objects for {profile.arch}, glibc <= {profile.glibc}")
    with clock.stage("audit"):
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
                "format": shared.facts.format,
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
            extra_runtime=trt_cache_record(profile, model_section.sha256),
            function=project.file.function.model_dump(mode="json") if profile.kind == "lambda" else None,
        )
    )
    write_manifest(staging, manifest)
    if profile.kind == "lambda":
        from .bytecode import precompile_init_modules

        layers = [layer.python_dir] if layer else []
        with clock.stage("init check"):
            bytecode = precompile_init_modules(staging, profile, "handler.handler", shared.cache, say, layers)
        manifest["runtime"]["bytecode"] = bytecode.to_dict()
        if layer is not None:  # signed and zipped now: the function's manifest names its digest
            manifest["runtime"]["layer"] = layer.finish(shared, profile, vendored, staging)
        write_manifest(staging, manifest)
    attest_tree(staging, shared.signer, provenance(shared, profile, vendored))
    say(f"[{profile.name}] packaging ({profile.packager}{', layer split' if layer else ''})")
    with clock.stage("archive"):
        if profile.packager == "lambda-zip":
            return package_function(staging, partial, profile.limits, shared.epoch, layer)
        return _package(profile, staging, partial, shared.epoch)


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
