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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .artifact_files import read_artifact
from .cache import BuildCache, sha256_file, sha256_tree
from .config import Project, load_project
from .errors import ConfigError, DataError, EdgepackError, FidelityError, PackagingError
from .manifest import ManifestInputs, manifest_dict, write_manifest
from .model.base import Batch, ModelArtifact, ModelSource
from .resources import runtime_package_dir, templates_dir
from .runtime.manifest import MANIFEST_FILE, ModelSection, RuntimeSection
from .runtime.signature import IOSignature
from .targets import TargetProfile, Variant
from .versions import tool_versions

if TYPE_CHECKING:
    from .runtime.predictor import Predictor

Progress = Callable[[str], None]

_MODEL_FILE_NAMES = {"tflite": "model.tflite", "onnx": "model.onnx", "openvino": "model.xml"}
_HOOKS_MODULE = "edgepack_user_hooks"
_ARTIFACT_SUFFIX = {"lambda-zip": ".zip", "ota-bundle": ".bundle.tar.gz"}
_PACKAGERS = frozenset(_ARTIFACT_SUFFIX)
_FIDELITY_BATCH = 64


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
    cached: bool = False
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


@dataclass
class _Inputs:
    """What every target of one build shares, loaded once."""

    project: Project
    source: ModelSource
    model_sha256: str
    calibration: Any  # edgepack.data.Dataset | None
    validation: Any  # edgepack.data.Dataset | None
    reference_outputs: Batch | None
    signer: Any
    cache: BuildCache
    epoch: int
    progress: Progress
    tools: dict[str, str]


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
) -> BuildResult:
    """Build the project's targets (or the named ones) into ``out_dir``.

    Config, model and data errors raise before any target starts. Target failures are
    returned in the result, one per target, and leave nothing for that target in ``out_dir``.
    """
    say = progress or (lambda _m: None)
    project = load_project(project_path, targets)
    _check_pass_chains(project)

    from .data import load_dataset
    from .model.loader import load_model
    from .packaging.archive import source_date_epoch
    from .signing.keys import load_signer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = cache or BuildCache.default()
    epoch = source_date_epoch() if epoch is None else epoch
    signer = _signer(project, key_path, load_signer)

    pf = project.file
    say(f"loading model {pf.model.path}")
    source = load_model(project.model_path, pf.model.format, pf.model.inputs, pf.model.outputs)
    signature = source.artifact.signature
    calibration = validation = None
    if pf.calibration is not None:
        calibration = load_dataset(pf.calibration, project.root, signature, _where(project, "calibration"))
    if pf.validation is not None:
        validation = load_dataset(pf.validation, project.root, signature, _where(project, "validation"))
    reference = None
    if validation is not None:
        say(f"running the original model on {validation.size} validation samples")
        reference = _predict_batched(source.predict, validation.inputs)

    shared = _Inputs(
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
    )
    results = []
    for profile in project.targets:
        started = time.perf_counter()
        try:
            result = _build_target(shared, profile, out)
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


def _check_pass_chains(project: Project) -> None:
    """Check every variant's passes exist, take the format they are given, and parse
    their configs, before anything runs."""
    from .passes import get_pass

    start = project.file.model.format or _format_of(project.model_path)
    for profile in project.targets:
        if profile.packager not in _PACKAGERS:
            raise ConfigError(
                f"packager {profile.packager} is not available in edgepack {__version__} "
                f"(available: {', '.join(sorted(_PACKAGERS))})",
                where=f"target {profile.name}",
            )
        for vi, variant in enumerate(profile.variants):
            fmt = start
            for pi, spec in enumerate(variant.passes):
                where = f"target {profile.name}: variants.{vi}({variant.name}).passes.{pi}"
                p = get_pass(spec.name)
                p.parse_config(spec.config, where)
                if fmt not in p.accepts:
                    raise ConfigError(
                        f"pass {spec.name} takes {', '.join(sorted(p.accepts))} models, not {fmt}",
                        where=where,
                    )
                fmt = p.produces
            if fmt not in _MODEL_FILE_NAMES:
                raise ConfigError(
                    f"variant {variant.name} ends with a {fmt} model; "
                    f"the {profile.backend} runtime needs one of {', '.join(_MODEL_FILE_NAMES)}",
                    where=f"target {profile.name}",
                )


def _format_of(path: Path) -> str:
    if path.is_dir():
        return "savedmodel"
    return {".keras": "keras", ".h5": "keras", ".onnx": "onnx", ".tflite": "tflite"}.get(
        path.suffix.lower(), "unknown"
    )


# -- one target ---------------------------------------------------------------------


def _build_target(shared: _Inputs, profile: TargetProfile, out: Path) -> TargetResult:
    say = shared.progress
    final = (
        out
        / f"{shared.project.name}-{shared.project.version}-{profile.name}{_ARTIFACT_SUFFIX[profile.packager]}"
    )
    artifact_key = _artifact_key(shared, profile)
    cached = shared.cache.get_dir("artifacts", artifact_key)
    if cached is not None and (cached / final.name).is_file():
        say(f"[{profile.name}] unchanged: reusing the cached artifact")
        _place(cached / final.name, final, shared)
        return _result_from_artifact(profile, final, cached=True)

    chosen = _choose_variant(shared, profile)
    staging = Path(tempfile.mkdtemp(prefix=f".{profile.name}-staging-", dir=out))
    partial = out / f".{final.name}.partial"
    try:
        package_report = _stage_and_package(shared, profile, chosen, staging, partial)
        _verify(partial, shared)
        os.replace(partial, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".cache-") as tmp:
        shutil.copy2(final, Path(tmp) / final.name)
        shared.cache.put_dir("artifacts", artifact_key, Path(tmp))
    say(f"[{profile.name}] wrote {final}")
    return _result_from_artifact(profile, final, cached=False, package_report=package_report)


def _artifact_key(shared: _Inputs, profile: TargetProfile) -> str:
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
        templates=sha256_tree(templates_dir() / profile.templates),
        tools=shared.tools,
        epoch=shared.epoch,
        signer=shared.signer.keyid,
    )


def _place(src: Path, final: Path, shared: _Inputs) -> None:
    partial = final.with_name(f".{final.name}.partial")
    try:
        shutil.copyfile(src, partial)
        _verify(partial, shared)
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)


def _verify(path: Path, shared: _Inputs) -> None:
    from .signing.keys import load_public_key_pem
    from .signing.verify import verify_artifact

    verify_artifact(path, [load_public_key_pem(shared.signer.public_key_pem())])


# -- optimization and the fidelity gate ---------------------------------------------


@dataclass(frozen=True)
class _Chosen:
    """The variant that ships, its model, why (the gate's record) and its answer to a sample."""

    variant: Variant
    model: ModelArtifact
    fidelity: dict[str, Any]
    sample: dict[str, Any]


def _choose_variant(shared: _Inputs, profile: TargetProfile) -> _Chosen:
    """Try the profile's variants in order; the first that passes the gate ships."""
    from .fidelity import evaluate

    attempts: list[dict[str, Any]] = []
    conversion_errors: list[EdgepackError] = []
    for variant in profile.variants:
        shared.progress(f"[{profile.name}] optimizing: variant {variant.name}")
        try:
            optimized = _optimize(shared, profile, variant)
        except DataError:
            raise
        except EdgepackError as e:
            conversion_errors.append(e)
            if len(conversion_errors) == len(profile.variants):
                # No variant even converted: the model is the problem (e.g. an op no converter
                # takes), not fidelity; say so with the converter's own one-line error.
                raise conversion_errors[0] from e
            attempts.append({"variant": variant.name, "passed": False, "failures": [e.hint()]})
            continue
        predict = host_predictor(
            profile.backend,
            optimized.path,
            profile.runtime_settings,
            optimized.signature,
            optimized.native_inputs,
            optimized.native_outputs,
        ).predict
        if shared.validation is None or shared.reference_outputs is None:
            fidelity = {"checked": False, "reason": "no validation data in the project config"}
            attempts.append({"variant": variant.name, "passed": True, "checked": False})
            return _Chosen(variant, optimized, fidelity, _sample(shared, predict))
        candidate = _predict_batched(predict, shared.validation.inputs)
        report = evaluate(
            shared.reference_outputs,
            candidate,
            shared.validation.labels,
            shared.project.file.validation.thresholds,  # type: ignore[union-attr]
        )
        record = {"variant": variant.name, **report.to_dict()}
        attempts.append(record)
        shared.progress(
            f"[{profile.name}] fidelity of {variant.name}: "
            + ("passed" if report.passed else "failed: " + "; ".join(report.failures))
        )
        if report.passed:
            fidelity = {"checked": True, "variant": variant.name, **report.to_dict(), "attempts": attempts}
            return _Chosen(variant, optimized, fidelity, _sample(shared, predict))
    error = FidelityError(
        f"no variant passed the fidelity gate: {_attempts_table(attempts)}", where=f"target {profile.name}"
    )
    error.attempts = attempts  # type: ignore[attr-defined]
    raise error


def _attempts_table(attempts: list[dict[str, Any]]) -> str:
    return "; ".join(f"{a['variant']}: {', '.join(a.get('failures') or ['failed'])}" for a in attempts)


def host_predictor(
    backend: str,
    model_path: Path,
    settings: Mapping[str, Any],
    signature: IOSignature,
    native_inputs: tuple[str, ...] = (),
    native_outputs: tuple[str, ...] = (),
) -> Predictor:
    """The runtime's Predictor for a model file on the build host (fidelity, samples, reports).

    The target's own runtime settings, minus ``cache_dir``: an on-device cache location
    that only makes sense inside an installed artifact."""
    from .runtime.backends import load_backend
    from .runtime.predictor import Predictor

    host_settings = {k: v for k, v in settings.items() if k != "cache_dir"}
    return Predictor(
        load_backend(backend, model_path, host_settings),
        signature,
        native_inputs=native_inputs,
        native_outputs=native_outputs,
    )


def _predict_batched(predict: Callable[[Batch], Batch], inputs: Batch) -> Batch:
    n = len(next(iter(inputs.values())))
    chunks: list[Batch] = []
    for start in range(0, n, _FIDELITY_BATCH):
        chunks.append(predict({k: v[start : start + _FIDELITY_BATCH] for k, v in inputs.items()}))
    return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}


def _optimize(shared: _Inputs, profile: TargetProfile, variant: Variant) -> ModelArtifact:
    """Run a variant's passes, reusing a cached result when nothing that decides it changed."""
    from .passes import PassContext, get_pass

    passes = [(get_pass(s.name), s) for s in variant.passes]
    configs = [p.parse_config(s.config, f"target {profile.name}: {variant.name}.{s.name}") for p, s in passes]
    needs_data = any(p.requires_calibration(c) for (p, _), c in zip(passes, configs, strict=True))
    if needs_data and shared.calibration is None:
        raise DataError(
            f"target {profile.name}: variant {variant.name} needs calibration data "
            "(add calibration: to edgepack.yaml)",
            where=str(shared.project.config_path),
        )
    key = shared.cache.key(
        kind="optimized-model",
        edgepack=__version__,
        model=shared.model_sha256,
        source_signature=shared.source.artifact.signature.to_dict(),
        native=[shared.source.artifact.native_inputs, shared.source.artifact.native_outputs],
        passes=[[s.name, c.model_dump(mode="json")] for (_, s), c in zip(passes, configs, strict=True)],
        calibration=shared.calibration.digest if needs_data else None,
        tools=shared.tools,
    )
    hit = shared.cache.get_dir("models", key)
    if hit is not None:
        return _load_cached_artifact(hit)

    calibration = shared.calibration

    def calibration_batches() -> Iterator[Batch]:
        assert calibration is not None
        return iter(calibration.batches(1))

    def pass_progress(message: str) -> None:
        shared.progress(f"[{profile.name}] {message}")

    with tempfile.TemporaryDirectory(prefix="edgepack-passes-") as tmp:
        model = shared.source.artifact
        for i, ((p, spec), config) in enumerate(zip(passes, configs, strict=True)):
            ctx = PassContext(
                work_dir=Path(tmp) / f"{i:02d}-{spec.name}",
                target=profile.name,
                calibration=calibration_batches if calibration is not None else None,
                progress=pass_progress,
            )
            ctx.work_dir.mkdir()
            shared.progress(f"[{profile.name}] {spec.name} {spec.config or ''}".rstrip())
            model = p.run(model, config, ctx)
        stored = Path(tmp) / "result"
        _store_artifact(model, stored)
        entry = shared.cache.put_dir("models", key, stored)
    return _load_cached_artifact(entry)


def _store_artifact(model: ModelArtifact, dest: Path) -> None:
    dest.mkdir()
    name = _MODEL_FILE_NAMES.get(model.format)
    if name is None:
        raise PackagingError(
            f"cannot package a {model.format} model; the last pass must produce tflite, onnx or openvino"
        )
    shutil.copyfile(model.path, dest / name)
    if model.format == "openvino":
        shutil.copyfile(model.path.with_suffix(".bin"), dest / "model.bin")
    meta = {
        "file": name,
        "format": model.format,
        "precision": model.precision,
        "signature": model.signature.to_dict(),
        "native_inputs": list(model.native_inputs),
        "native_outputs": list(model.native_outputs),
        "details": _jsonable(model.details),
    }
    (dest / "artifact.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")


def _load_cached_artifact(entry: Path) -> ModelArtifact:
    meta = json.loads((entry / "artifact.json").read_text(encoding="utf-8"))
    return ModelArtifact(
        path=entry / meta["file"],
        format=meta["format"],
        signature=IOSignature.from_dict(meta["signature"]),
        precision=meta["precision"],
        native_inputs=tuple(meta["native_inputs"]),
        native_outputs=tuple(meta["native_outputs"]),
        details=meta["details"],
    )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


# -- staging, packaging, signing ----------------------------------------------------


def _stage_and_package(
    shared: _Inputs,
    profile: TargetProfile,
    chosen: _Chosen,
    staging: Path,
    partial: Path,
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
    model_file = model_dir / _MODEL_FILE_NAMES[optimized.format]
    shutil.copytree(
        runtime_package_dir(), staging / "edgepack_runtime", ignore=shutil.ignore_patterns("__pycache__")
    )
    hooks_module = None
    if project.file.hooks:
        hooks_path = project.resolve(project.file.hooks)
        if not hooks_path.is_file() or hooks_path.suffix != ".py":
            raise ConfigError(
                f"hooks file not found or not a .py file: {hooks_path}", where=_where(project, "hooks")
            )
        shutil.copyfile(hooks_path, staging / f"{_HOOKS_MODULE}.py")
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
    vendored = vendor(profile, staging, shared.cache, say)
    say(f"[{profile.name}] auditing shared objects for {profile.arch}, glibc <= {profile.glibc}")
    audit_tree(staging, profile.arch, profile.glibc or "", python=profile.python)

    model_section = ModelSection(
        file=model_file.relative_to(staging).as_posix(),
        format=optimized.format,
        sha256=sha256_file(model_file),
        precision=optimized.precision,
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
            },
            variant=variant.name,
            source={
                "file": source_file.name,
                "format": shared.source.artifact.format,
                "sha256": shared.model_sha256,
            },
            runtime=RuntimeSection(backend=profile.backend, settings=dict(profile.runtime_settings)),
            entrypoint="handler.handler" if profile.kind == "lambda" else None,
            packages=[p.to_dict() for p in vendored.packages],
            trimmed=list(vendored.trimmed),
            fidelity=fidelity,
            sample=chosen.sample,
            hooks=hooks_module,
            telemetry={
                **project.file.telemetry.model_dump(mode="json"),
                "service": project.file.telemetry.service or project.name,
            },
            epoch=shared.epoch,
            tool_versions=shared.tools,
            extra_runtime=_trt_cache_record(profile, model_section.sha256),
        )
    )
    write_manifest(staging, manifest)
    if profile.kind == "lambda":
        from .bytecode import precompile_init_modules

        bytecode = precompile_init_modules(staging, profile, "handler.handler", shared.cache, say)
        manifest["runtime"]["bytecode"] = bytecode.to_dict()
        write_manifest(staging, manifest)
    attest_tree(staging, shared.signer, _provenance(shared, profile, vendored))
    say(f"[{profile.name}] packaging ({profile.packager})")
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


def _sample(shared: _Inputs, predict: Callable[[Batch], Batch]) -> dict[str, Any]:
    """One input and the shipped model's answer, recorded for device health checks."""
    data = shared.validation or shared.calibration
    if data is None:
        return {}
    inputs = {k: v[:1] for k, v in data.inputs.items()}
    outputs = predict(inputs)
    return {
        "inputs": {k: v.tolist() for k, v in inputs.items()},
        "outputs": {k: np.asarray(v).tolist() for k, v in outputs.items()},
    }


def _provenance(shared: _Inputs, profile: TargetProfile, vendored: Any) -> Any:
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
    if profile.packager == "ota-bundle":
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
        cached=cached,
    )
