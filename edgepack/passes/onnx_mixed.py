"""Accuracy-controlled int8 for ``onnx-quantize``: keep the few nodes int8 ruins in float.

When the fully quantized model fails the project's fidelity gate, every quantizable node is
quantized alone (ORT's ``nodes_to_quantize=[node]``, with the ranges of the one calibration
run) and the model is run on the validation inputs. A node's error is the relative RMS error
of the model outputs against the float model's:

    max over outputs of  rms(quantized - float) / rms(float)

Quantizing one node alone is what finds the culprits together: a layer whose output has a few
huge channels (outliers) shows the error when it quantizes its own output, and so does the
layer that reads that output, since it quantizes the same tensor as its input. Comparing the
fully quantized model's intermediate tensors would blame whatever comes after the damage.

The nodes are then excluded (``nodes_to_exclude``) worst first, one more each time, until
``ctx.gate`` passes; at most ``max_float_nodes``. The gate, not the ranking, decides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from ..model.base import Batch, ModelArtifact
from .accuracy_control import (
    artifact_at,
    check_full_int8,
    exclude_worst_until_gate_passes,
    with_search_result,
)
from .base import PassContext

if TYPE_CHECKING:
    from .onnx import NodeQuantizer, OnnxQuantizeConfig

# Validation samples each single-node model runs on: enough to rank nodes, bounded so that a
# large validation set does not multiply into minutes (one run per quantizable node).
ERROR_SAMPLES = 256
ERROR_DESCRIPTION = (
    "max over outputs of rms(output error) / rms(float output), with only this node quantized, "
    "on the validation inputs"
)


@dataclass(frozen=True)
class NodeError:
    """One quantizable node and the output error it causes when quantized alone."""

    node: str  # name in the model ORT quantized (the input model, pre-processed)
    op: str
    error: float

    def to_dict(self, shipped_name: str | None = None) -> dict[str, Any]:
        record: dict[str, Any] = {"node": shipped_name or self.node, "op": self.op}
        if shipped_name and shipped_name != self.node:
            record["source_node"] = self.node
        record["error"] = float(f"{self.error:.6g}")
        return record


def keep_sensitive_nodes_in_float(
    full: ModelArtifact,
    source: ModelArtifact,
    quantizer: NodeQuantizer,
    config: OnnxQuantizeConfig,
    ctx: PassContext,
) -> ModelArtifact:
    """``full`` if it passes the gate; else the model with the fewest of its worst nodes in
    float that passes; else ``PassError`` naming the best agreement reached."""
    assert ctx.gate is not None and ctx.validation is not None
    full_summary = check_full_int8(full, ctx, config.max_float_nodes, "max_float_nodes")
    if full_summary["passed"]:
        return _with_details(full, [], {}, full_summary, full_summary, ranked=0, samples=0)

    feed = _validation_feed(ctx.validation(), source, ctx.target)
    samples = len(next(iter(feed.values())))
    ranked = rank_nodes(source.path, quantizer, feed, ctx)
    names: dict[str, str] = {}

    def write(path: Path, chosen: Sequence[NodeError]) -> ModelArtifact:
        names.clear()
        names.update(quantizer.write(path, exclude=[n.node for n in chosen]))
        return artifact_at(full, path)

    # Every quantizable node in float is not int8 any more: leave at least one quantized, and
    # let the chain's fp16/fp32 variants answer for a model that int8 cannot touch at all.
    chosen, summary = exclude_worst_until_gate_passes(
        full,
        full_summary,
        ranked[: min(config.max_float_nodes, len(ranked) - 1)],
        write,
        lambda n: f"{n.node} ({n.op})",
        ctx,
        unit="node",
        suffix=".onnx",
        remove_failed=True,
    )
    final = artifact_at(full, full.path)
    return _with_details(final, chosen, names, full_summary, summary, ranked=len(ranked), samples=samples)


def rank_nodes(
    float_model: Path, quantizer: NodeQuantizer, feed: dict[str, np.ndarray], ctx: PassContext
) -> list[NodeError]:
    """Every quantizable node with its error quantized alone, worst first (ties in graph order)."""
    reference = _run(float_model, feed)
    nodes = quantizer.candidates()
    ctx.progress(f"ranking {len(nodes)} node(s) by int8 error on {len(next(iter(feed.values())))} samples")
    scratch = ctx.work_dir / "alone.onnx"
    errors: list[NodeError] = []
    try:
        for name, op in nodes:
            quantizer.write(scratch, only=[name])
            errors.append(NodeError(name, op, output_error(reference, _run(scratch, feed))))
    finally:
        scratch.unlink(missing_ok=True)
    return sorted(errors, key=lambda n: -n.error if math.isfinite(n.error) else -math.inf)


def output_error(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> float:
    """max over outputs of rms(candidate - reference) / rms(reference); NaN anywhere is inf."""
    worst = 0.0
    for ref, cand in zip(reference, candidate, strict=True):
        r = np.asarray(ref, dtype=np.float64)
        c = np.asarray(cand, dtype=np.float64)
        if not np.isfinite(c).all():
            return math.inf
        rms_error = float(np.sqrt(np.mean((c - r) ** 2))) if r.size else 0.0
        rms_ref = float(np.sqrt(np.mean(r**2))) if r.size else 0.0
        worst = max(worst, rms_error / rms_ref if rms_ref > 0 else rms_error)
    return worst


def _run(path: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    outputs: list[list[np.ndarray]] = []
    count = len(next(iter(feed.values())))
    for start in range(0, count, 64):
        chunk = {name: array[start : start + 64] for name, array in feed.items()}
        outputs.append([np.asarray(a) for a in session.run(None, chunk)])
    return [np.concatenate([chunk[i] for chunk in outputs]) for i in range(len(outputs[0]))]


def _validation_feed(batch: Batch, model: ModelArtifact, target: str) -> dict[str, np.ndarray]:
    """Up to ``ERROR_SAMPLES`` validation samples keyed by the file's input names, in its dtypes."""
    from .onnx import _native_io, _onnx_input_dtypes

    native_in, _ = _native_io(model)
    dtypes = _onnx_input_dtypes(model.path)
    feed: dict[str, np.ndarray] = {}
    for public, native in zip(model.signature.input_names, native_in, strict=True):
        if public not in batch:
            raise DataError(f"target {target}: validation data has no input {public!r}")
        feed[native] = np.ascontiguousarray(np.asarray(batch[public])[:ERROR_SAMPLES], dtype=dtypes[native])
    if not feed or min(len(a) for a in feed.values()) == 0:
        raise DataError(f"target {target}: the validation data has no samples")
    return feed


# -- results ----------------------------------------------------------------------------


def _with_details(
    model: ModelArtifact,
    float_nodes: Sequence[NodeError],
    names: dict[str, str],
    full: dict[str, Any],
    final: dict[str, Any],
    ranked: int,
    samples: int,
) -> ModelArtifact:
    found = {
        "float_nodes": [node.to_dict(names.get(node.node)) for node in float_nodes],
        "node_error": ERROR_DESCRIPTION,
        "nodes_ranked": ranked,
        "error_samples": samples,
    }
    return with_search_result(model, full, final, found)
