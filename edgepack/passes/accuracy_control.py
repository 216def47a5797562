"""What the accuracy-controlled int8 paths share (``onnx_mixed``, ``tflite_mixed``, and
``openvino``'s NNCF accuracy control).

- ``check_gate_inputs``: the validation data and gate accuracy control cannot run without.
- ``check_full_int8``: the gate's summary of the fully quantized model.
- ``gate_summary``: a fidelity gate report in one line, with a score to compare candidates by;
  ``gate_record``: the figures of a summary the manifest records.
- ``exclude_worst_until_gate_passes``: the search ONNX and TFLite run over their own ranking
  (nodes, layers): the worst in float, one more each time, until the gate passes.
- ``artifact_at`` and ``with_quantization``: a model's description for another file, and with
  a record merged into its ``quantization`` details (``with_search_result``: the search's record).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..errors import DataError, PassError
from ..model.base import Batch, ModelArtifact
from .base import PassContext

Ranked = TypeVar("Ranked")

# The figures of a gate summary that the manifest records (``full_int8``, ``result``).
GATE_RECORD_KEYS = ("passed", "top1_agreement", "cosine_similarity")


def gate_summary(report: Any) -> dict[str, Any]:
    """The gate's verdict and figures, the figures in one line (``text``), and a ``score`` to
    compare candidates by: (top-1 agreement, cosine), a missing or NaN figure scoring -1 (a
    candidate answering NaN is the worst, never the best reached)."""
    metrics = report.metrics
    top1 = metrics.top1_agreement
    cosine = metrics.cosine_similarity
    parts = [f"top-1 agreement {top1:.3f}"] if top1 is not None else []
    parts.append(f"cosine {cosine:.4f}")
    top1_score = top1 if top1 is not None and math.isfinite(top1) else -1.0
    return {
        "passed": bool(report.passed),
        "top1_agreement": top1,
        "cosine_similarity": cosine,
        "score": (top1_score, cosine if math.isfinite(cosine) else -1.0),
        "text": ", ".join(parts),
    }


def gate_record(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of a ``gate_summary`` the manifest keeps (not its text or score)."""
    return {k: summary[k] for k in GATE_RECORD_KEYS}


def check_gate_inputs(ctx: PassContext) -> tuple[Callable[[], Batch], Callable[[ModelArtifact], Any]]:
    """``ctx``'s validation data and gate; ``DataError`` when the config has no validation data."""
    if ctx.gate is None or ctx.validation is None:
        raise DataError(
            f"target {ctx.target}: accuracy_control needs validation data (validation: in edgepack.yaml)"
        )
    return ctx.validation, ctx.gate


def check_full_int8(full: ModelArtifact, ctx: PassContext, limit: int, limit_name: str) -> dict[str, Any]:
    """``ctx.gate``'s summary of the fully quantized ``full``; ``PassError`` when it fails and
    ``limit`` (the config's ``limit_name``: the most kept in float) is 0."""
    assert ctx.gate is not None
    ctx.progress("checking full int8 against the fidelity gate")
    summary = gate_summary(ctx.gate(full))
    if not summary["passed"] and limit == 0:
        raise PassError(
            f"target {ctx.target}: int8 fails the fidelity gate ({summary['text']}) and {limit_name} is 0"
        )
    return summary


def exclude_worst_until_gate_passes(
    full: ModelArtifact,
    full_summary: dict[str, Any],
    candidates: Sequence[Ranked],
    write: Callable[[Path, Sequence[Ranked]], ModelArtifact],
    describe: Callable[[Ranked], str],
    ctx: PassContext,
    *,
    unit: str,
    suffix: str,
    remove_failed: bool,
) -> tuple[Sequence[Ranked], dict[str, Any]]:
    """The first ``candidates[:k]`` (k = 1, 2, ...) whose model passes ``ctx.gate``, with its
    summary; that model replaces ``full.path`` and the other ``mixed-*`` files are removed.

    ``write(path, chosen)`` writes the model with ``chosen`` in float to ``path`` and describes
    it; ``describe`` names one candidate in progress lines; ``unit`` is what a candidate is
    (``node``, ``layer``) in messages. ``remove_failed``: delete a candidate that fails at once
    (otherwise it stays until one passes). None passes: ``PassError`` naming the best reached.
    """
    assert ctx.gate is not None
    best = full_summary
    for k in range(1, len(candidates) + 1):
        chosen = candidates[:k]
        ctx.progress(f"int8 with {k} {unit}(s) in float: {describe(chosen[-1])}")
        path = ctx.work_dir / f"mixed-{k}{suffix}"
        candidate = write(path, chosen)
        summary = gate_summary(ctx.gate(candidate))
        if summary["score"] > best["score"]:
            best = {**summary, "text": f"{summary['text']} with {k} float {unit}(s)"}
        if summary["passed"]:
            os.replace(path, full.path)
            for stale in ctx.work_dir.glob(f"mixed-*{suffix}"):
                stale.unlink()
            return chosen, summary
        if remove_failed:
            path.unlink()
    raise PassError(
        f"target {ctx.target}: int8 with up to {len(candidates)} float {unit}(s) still fails the fidelity "
        f"gate; best {best['text']} (full int8: {full_summary['text']})"
    )


def artifact_at(model: ModelArtifact, path: Path, details: Mapping[str, Any] | None = None) -> ModelArtifact:
    """``model``'s description for the model file at ``path``, with ``details`` (default: a copy
    of ``model``'s)."""
    return dataclasses.replace(model, path=path, details=dict(model.details if details is None else details))


def with_search_result(
    model: ModelArtifact, full: Mapping[str, Any], final: Mapping[str, Any], found: Mapping[str, Any]
) -> ModelArtifact:
    """``model`` with the record of an ``exclude_worst_until_gate_passes`` search: ``found``
    (what stays float, how it was ranked) between the gate records of full int8 and the result."""
    return with_quantization(
        model,
        {"accuracy_control": True, **found, "full_int8": gate_record(full), "result": gate_record(final)},
    )


def with_quantization(model: ModelArtifact, record: Mapping[str, Any]) -> ModelArtifact:
    """``model`` with ``record`` merged over its ``quantization`` details."""
    quantization = {**model.details.get("quantization", {}), **record}
    return dataclasses.replace(model, details={**model.details, "quantization": quantization})
