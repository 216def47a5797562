"""Accuracy-controlled int8 for ``openvino-quantize``: NNCF reverts the layers that cost accuracy.

When the plain NNCF int8 model fails the project's fidelity gate, ``nncf.quantize_with_accuracy_control``
quantizes again and then, ranking groups of quantizers by how much each costs on the validation
data, reverts the worst group to float, one group per iteration, until the metric has dropped by
no more than ``max_drop``. The metric is the top-1 agreement of each validation sample with the
fp32 IR's outputs (cosine similarity for outputs that are not class scores), computed in f32: both
NNCF's evaluation and the reference run with ``INFERENCE_PRECISION_HINT`` f32, as the gate does.
The result ships only if ``ctx.gate`` passes it.

Which operations ended up in float is read from the two IRs, not from NNCF's log: an operation is
quantized when an input comes from a FakeQuantize or from int8 weights' dequantization chain; the
operations quantized in the plain int8 IR and not in the result are the float layers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..errors import DataError, PassError
from ..model.base import Batch

_F32 = {"INFERENCE_PRECISION_HINT": "f32"}
# Nodes of the dequantization chain NNCF writes for int8 weights: Constant(i8) -> Convert ->
# [Subtract zero point] -> Multiply scale -> (Reshape) -> the layer.
_DEQUANT_CHAIN = frozenset({"Convert", "Subtract", "Multiply", "Reshape", "Transpose", "Unsqueeze"})
_INTEGER_TYPES = frozenset({"i8", "u8", "i4", "u4"})

Sample = dict[str, np.ndarray]


def validation_samples(batch: Batch, public_in: tuple[str, ...], dtypes: dict[str, Any]) -> list[Sample]:
    """The validation inputs one sample at a time, keyed by public input names."""
    missing = [n for n in public_in if n not in batch]
    if missing:
        raise DataError(f"validation data lacks input {missing[0]!r}")
    count = min(len(batch[n]) for n in public_in)
    if count == 0:
        raise DataError("the validation data has no samples")
    return [
        {n: np.asarray(batch[n][i : i + 1], dtype=dtypes.get(n, np.float32)) for n in public_in}
        for i in range(count)
    ]


class AgreementMetric:
    """NNCF's ``validation_fn``: per-sample agreement with the fp32 model's outputs.

    Dataset items are ``(index, sample)``; the reference outputs are computed once, here.
    """

    def __init__(
        self, ov: Any, fp32_model: Any, samples: list[Sample], transform: Callable[[Sample], Sample]
    ) -> None:
        self._transform = transform
        compiled = ov.Core().compile_model(fp32_model, "CPU", _F32)
        self.reference = [self._outputs(compiled, sample) for sample in samples]

    def _outputs(self, compiled: Any, sample: Sample) -> list[np.ndarray]:
        result = compiled(self._transform(sample))
        return [np.asarray(result[port], dtype=np.float64) for port in compiled.outputs]

    def __call__(self, compiled: Any, data: Iterable[tuple[int, Sample]]) -> tuple[float, list[float]]:
        values = []
        for index, sample in data:
            got = self._outputs(compiled, sample)
            values.append(
                min(_agreement(ref, out) for ref, out in zip(self.reference[index], got, strict=True))
            )
        return (float(np.mean(values)) if values else 0.0), values


def _agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """1 or 0 for class scores (same arg-max or not); the cosine of the values otherwise."""
    if reference.ndim == 2 and reference.shape[1] > 1:
        return float(np.argmax(reference[0]) == np.argmax(candidate[0]))
    a, b = reference.ravel(), candidate.ravel()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norm == 0.0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(np.dot(a, b) / norm)


def quantize_with_accuracy_control(
    nncf: Any,
    ov: Any,
    ov_model: Any,
    calibration: Any,
    samples: list[Sample],
    transform: Callable[[Sample], Sample],
    kwargs: dict[str, Any],
    max_drop: float,
    max_iterations: int,
) -> Any:
    """NNCF's accuracy-controlled int8 of ``ov_model``, judged by agreement with its fp32 outputs."""
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    metric = AgreementMetric(ov, ov_model, samples, transform)
    validation = nncf.Dataset(list(enumerate(samples)), lambda item: transform(item[1]))
    return nncf.quantize_with_accuracy_control(
        ov_model,
        calibration,
        validation,
        metric,
        max_drop=max_drop,
        drop_type=nncf.DropType.ABSOLUTE,
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
            max_num_iterations=max_iterations
        ),
        **kwargs,
    )


# -- reading the result -------------------------------------------------------------------


def quantized_ops(ov_model: Any) -> dict[str, str]:
    """Friendly name -> type of every operation that computes on int8: an input comes from
    a FakeQuantize (activations) or from the dequantization chain of integer weights."""
    chain: set[str] = set()
    found: dict[str, str] = {}
    for op in ov_model.get_ordered_ops():
        kind = op.get_type_name()
        producers = [port.get_source_output().get_node() for port in op.inputs()]
        from_integer = any(_integer_constant(p) or p.get_friendly_name() in chain for p in producers)
        if kind in _DEQUANT_CHAIN and from_integer:
            chain.add(op.get_friendly_name())
            continue
        if kind in ("FakeQuantize", "Constant", "Parameter", "Result"):
            continue
        if from_integer or any(p.get_type_name() == "FakeQuantize" for p in producers):
            found[op.get_friendly_name()] = kind
    return found


def _integer_constant(node: Any) -> bool:
    return bool(
        node.get_type_name() == "Constant" and node.get_element_type().get_type_name() in _INTEGER_TYPES
    )


def fake_quantize_count(ov_model: Any) -> int:
    return sum(1 for op in ov_model.get_ordered_ops() if op.get_type_name() == "FakeQuantize")


def float_layers(full: Any, mixed: Any) -> list[dict[str, str]]:
    """The operations int8 in ``full`` and float in ``mixed``, in graph order."""
    before, after = quantized_ops(full), quantized_ops(mixed)
    return [{"layer": name, "op": kind} for name, kind in before.items() if name not in after]


def too_inaccurate(target: str, what: str, summary: dict[str, Any], full: dict[str, Any] | None) -> PassError:
    tail = f" (full int8: {full['text']})" if full is not None else ""
    return PassError(f"target {target}: {what} fails the fidelity gate: {summary['text']}{tail}")
