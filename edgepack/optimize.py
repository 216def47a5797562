"""One variant's passes, run or answered from the cache; a result enters the cache only
after the target's runtime has loaded it and run it on a sample.

A converted model is not a usable model until the runtime has loaded and run it (an int16x8
depthwise conv LiteRT refuses, an fp16 ONNX graph with a Cast type mismatch): such a result
is a failed variant with its reason, never a cache entry that fails the same way next time.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import __version__
from .build_inputs import BuildInputs
from .cache import sha256_tree
from .errors import DataError, PackagingError, PassError
from .host_run import artifact_predictor, first_sample
from .model.base import Batch, ModelArtifact
from .passes.converter_errors import first_line
from .runtime.signature import IOSignature
from .targets import TargetProfile, Variant

MODEL_FILE_NAMES = {"tflite": "model.tflite", "onnx": "model.onnx", "openvino": "model.xml"}

Gate = Callable[[ModelArtifact], Any]  # -> edgepack.fidelity.FidelityReport


def optimize(
    shared: BuildInputs,
    profile: TargetProfile,
    variant: Variant,
    gate: Gate | None,
    thresholds: dict[str, Any] | None,
) -> ModelArtifact:
    """Run a variant's passes, reusing a cached result when nothing that decides it changed.

    ``gate`` is the target's fidelity gate and ``thresholds`` the bar it holds models to; passes
    that choose float layers by accuracy use the one, and their results are cached by the other."""
    from .passes import PassContext, get_pass

    passes = [(get_pass(s.name), s) for s in variant.passes]
    configs = [p.parse_config(s.config, f"target {profile.name}: {variant.name}.{s.name}") for p, s in passes]
    pairs = list(zip(passes, configs, strict=True))
    needs_data = any(p.requires_calibration(c) for (p, _), c in pairs)
    needs_validation = any(p.requires_validation(c) for (p, _), c in pairs)
    if needs_data and shared.calibration is None:
        raise DataError(
            f"target {profile.name}: variant {variant.name} needs calibration data "
            "(add calibration: to edgepack.yaml)",
            where=str(shared.project.config_path),
        )
    if needs_validation and (shared.validation is None or gate is None):
        raise DataError(
            f"target {profile.name}: variant {variant.name} chooses float layers by accuracy and "
            "needs validation data (add validation: to edgepack.yaml)",
            where=str(shared.project.config_path),
        )
    key = shared.cache.key(
        kind="optimized-model",
        edgepack=__version__,
        model=shared.model_sha256,
        source_signature=shared.facts.signature.to_dict(),
        native=[shared.facts.native_inputs, shared.facts.native_outputs],
        passes=[[s.name, c.model_dump(mode="json")] for (_, s), c in pairs],
        calibration=shared.calibration.digest if needs_data else None,
        # An accuracy-controlled result depends on the data and the bar it was held to.
        validation=[shared.validation.digest, thresholds] if needs_validation else None,
        backend=[profile.backend, profile.runtime_settings],
        # The passes' own code: a fixed converter bug must not be answered from the cache.
        passes_code=passes_code_digest(),
        tools=shared.tools,
    )
    hit = shared.cache.get_dir("models", key)
    if hit is not None:
        return load_stored(hit)

    calibration = shared.calibration
    validation = shared.validation

    def calibration_batches() -> Iterator[Batch]:
        assert calibration is not None
        return iter(calibration.batches(1))

    def validation_inputs() -> Batch:
        assert validation is not None
        return dict(validation.inputs)

    def pass_progress(message: str) -> None:
        shared.progress(f"[{profile.name}] {message}")

    with tempfile.TemporaryDirectory(prefix="edgepack-passes-") as tmp:
        model = shared.source.artifact
        for i, ((p, spec), config) in enumerate(pairs):
            ctx = PassContext(
                work_dir=Path(tmp) / f"{i:02d}-{spec.name}",
                target=profile.name,
                calibration=calibration_batches if calibration is not None else None,
                progress=pass_progress,
                validation=validation_inputs if validation is not None else None,
                gate=gate,
            )
            ctx.work_dir.mkdir()
            shared.progress(f"[{profile.name}] {spec.name} {spec.config or ''}".rstrip())
            model = p.run(model, config, ctx)
        stored = Path(tmp) / "result"
        store(model, stored)
        check_loads(
            profile,
            load_stored(stored),
            first_sample(shared.validation or shared.calibration, model.signature),
        )
        entry = shared.cache.put_dir("models", key, stored)
    return load_stored(entry)


@functools.cache
def passes_code_digest() -> str:
    return sha256_tree(Path(__file__).parent / "passes")


def needs_validation(variant: Variant, profile: TargetProfile) -> bool:
    """Whether a variant chooses its float layers by accuracy (and so needs validation data)."""
    from .passes import get_pass

    for spec in variant.passes:
        p = get_pass(spec.name)
        if p.requires_validation(p.parse_config(spec.config, f"target {profile.name}: {variant.name}")):
            return True
    return False


def check_loads(profile: TargetProfile, model: ModelArtifact, sample: Batch) -> None:
    """Load ``model`` with the target's runtime and run it once, or raise a one-line PassError."""
    try:
        artifact_predictor(profile.backend, model, profile.runtime_settings).predict(sample)
    except Exception as e:
        raise PassError(
            f"target {profile.name}: the {profile.backend} runtime cannot load or run this model: "
            + first_line(e)
        ) from e


def store(model: ModelArtifact, dest: Path) -> None:
    dest.mkdir()
    name = MODEL_FILE_NAMES.get(model.format)
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


def load_stored(entry: Path) -> ModelArtifact:
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
