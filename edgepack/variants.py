"""The fallback chain: try a target's variants in order; the first that passes the gate ships.

A variant that fails to convert, to load or to run is a failed attempt with its one-line
reason, and the next variant is tried: the chain never stops on a crash. Every default
chain ends with the unquantized model for the target's backend, so a model that converts
ships something that passed the gate; the attempts record what was given up on the way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .build_inputs import BuildInputs
from .config import Project, Thresholds, merge_thresholds
from .errors import ConfigError, DataError, EdgepackError, FidelityError
from .host_run import artifact_predictor, first_sample, predict_batched
from .model.base import Batch, ModelArtifact
from .model.precision import measure_precision
from .optimize import needs_validation, optimize
from .passes.converter_errors import first_line
from .targets import TargetProfile, Variant


@dataclass(frozen=True)
class Chosen:
    """The variant that ships, its model, why (the gate's record) and its answer to a sample."""

    variant: Variant
    model: ModelArtifact
    fidelity: dict[str, Any]
    sample_inputs: Batch
    sample_outputs: Batch
    precision: dict[str, Any]


def target_thresholds(project: Project, profile: TargetProfile) -> Thresholds:
    """The project's thresholds with the target's own merged over them."""
    base = project.file.validation.thresholds if project.file.validation is not None else Thresholds()
    if not profile.thresholds:
        return base
    where = f"{project.config_path}: targets.{profile.name}.overrides.thresholds"
    return merge_thresholds(base, profile.thresholds, where)


def choose_variant(shared: BuildInputs, profile: TargetProfile) -> Chosen:
    """Try the profile's variants in order; the first that passes the gate ships."""
    from .fidelity import evaluate

    thresholds = target_thresholds(shared.project, profile)
    validation, reference = shared.validation, shared.reference_outputs

    def judge(predict: Callable[[Batch], Batch]) -> Any:
        assert validation is not None and reference is not None
        candidate_outputs = predict_batched(predict, validation.inputs)
        return evaluate(
            reference, candidate_outputs, validation.labels, thresholds, classes=shared.project.classes
        )

    def gate(candidate: ModelArtifact) -> Any:
        return judge(artifact_predictor(profile.backend, candidate, profile.runtime_settings).predict)

    has_gate = validation is not None and reference is not None
    attempts: list[dict[str, Any]] = []
    full_int8: ModelArtifact | None = None  # the all-int8 model the gate refused, if any
    errors: list[EdgepackError] = []
    tried = 0
    for variant in profile.variants:
        if not has_gate and needs_validation(variant, profile):
            shared.progress(f"[{profile.name}] variant {variant.name} skipped: it needs validation data")
            attempts.append(
                {
                    "variant": variant.name,
                    "passed": False,
                    "stage": "skipped",
                    "failures": ["needs validation data"],
                }
            )
            continue
        shared.progress(f"[{profile.name}] optimizing: variant {variant.name}")
        tried += 1
        try:
            optimized = optimize(
                shared, profile, variant, gate if has_gate else None, thresholds.model_dump(mode="json")
            )
            predict = artifact_predictor(profile.backend, optimized, profile.runtime_settings).predict
            sample_inputs = first_sample(shared.validation or shared.calibration, optimized.signature)
            sample_outputs = predict(sample_inputs)
            report = judge(predict) if has_gate else None  # the model loaded once, for both
        except (DataError, ConfigError):
            raise  # the project's data or config is wrong: no other variant would fare better
        except Exception as e:  # a variant that cannot convert, load or run is a failed attempt
            reason = e.hint() if isinstance(e, EdgepackError) else f"{type(e).__name__}: {first_line(e)}"
            if isinstance(e, EdgepackError):
                errors.append(e)
            shared.progress(f"[{profile.name}] variant {variant.name} failed: {reason}")
            attempts.append(
                {"variant": variant.name, "passed": False, "stage": "optimize", "failures": [reason]}
            )
            continue
        precision = measure_precision(optimized.path, optimized.format)
        if report is None:
            attempts.append({"variant": variant.name, "passed": True, "checked": False})
            fidelity = {
                "checked": False,
                "reason": "no validation data in the project config",
                "attempts": attempts,
            }
            return Chosen(variant, optimized, fidelity, sample_inputs, sample_outputs, precision)
        record = {
            "variant": variant.name,
            "stage": "gate",
            "precision": precision["precision"],
            **report.to_dict(),
        }
        attempts.append(record)
        shared.progress(
            f"[{profile.name}] fidelity of {variant.name}: "
            + ("passed" if report.passed else "failed: " + "; ".join(report.failures))
        )
        if report.passed:
            fidelity = {"checked": True, "variant": variant.name, **report.to_dict(), "attempts": attempts}
            if full_int8 is not None and float_layer_records(optimized.details):
                fidelity["mixed_cost"] = mixed_cost(profile, optimized, full_int8, sample_inputs)
            return Chosen(variant, optimized, fidelity, sample_inputs, sample_outputs, precision)
        if precision["precision"] == "int8" and not float_layer_records(optimized.details):
            full_int8 = optimized
    if errors and len(errors) == tried:
        # No variant even converted: the model is the problem (e.g. an op no converter takes),
        # not fidelity; say so with the converter's own one-line error.
        raise errors[0]
    error = FidelityError(
        f"no variant passed the fidelity gate: {attempts_table(attempts)}", where=f"target {profile.name}"
    )
    error.attempts = attempts  # type: ignore[attr-defined]
    raise error


def attempts_table(attempts: list[dict[str, Any]]) -> str:
    return "; ".join(f"{a['variant']}: {', '.join(a.get('failures') or ['failed'])}" for a in attempts)


def given_up(attempts: list[dict[str, Any]]) -> str:
    """One line on what the shipped variant cost: the variants tried before it and why they failed."""
    failed = [a for a in attempts if not a.get("passed")]
    if not failed:
        return ""
    return "; ".join(f"{a['variant']} {', '.join(a.get('failures') or ['failed'])}" for a in failed)


def float_layer_records(details: Any) -> list[Any]:
    """The layers a mixed-precision pass kept in float, as its details record them."""
    quantization = (details or {}).get("quantization") or {}
    return list(quantization.get("float_nodes") or quantization.get("float_layers") or [])


_COST_RUNS = 200


def mixed_cost(
    profile: TargetProfile, mixed: ModelArtifact, full: ModelArtifact, sample: Batch
) -> dict[str, Any]:
    """What keeping layers in float cost against the all-int8 model: size and p50 latency at
    batch 1 on this build host (measured, for the summary; no decision depends on it)."""
    from .report import time_predict

    def p50(model: ModelArtifact) -> float:
        predictor = artifact_predictor(profile.backend, model, profile.runtime_settings)
        return round(time_predict(predictor.predict, sample, _COST_RUNS)[0], 4)

    def size(model: ModelArtifact) -> int:
        return sum(f.stat().st_size for f in model.files())

    return {
        "size_bytes": size(mixed),
        "full_int8_size_bytes": size(full),
        "p50_ms": p50(mixed),
        "full_int8_p50_ms": p50(full),
        "runs": _COST_RUNS,
    }
