"""Accuracy-controlled int8 for ``tflite-convert``: keep the few layers int8 ruins in float.

When the full-integer model fails the project's fidelity gate, TensorFlow's quantization
debugger runs the model on the validation inputs with every quantized op's output checked
against the float op's. Each layer gets a noise figure: the RMS of its quantization error
divided by the median magnitude of its (non-zero) float activations. A layer whose range is
stretched by a few huge activations (outliers) quantizes its typical values to a handful of
steps and stands out by orders of magnitude, where an ordinary layer's figure is about 1 %.
(The debugger's own ``rmse/scale`` does not see this: the error is still half a step, the
step is what is too coarse.)

The layers are then denylisted worst first, one more each time, re-quantizing from the same
calibration, until ``ctx.gate`` passes; at most ``max_float_layers``. The gate, not the noise
figure, decides: a layer's float output only helps once its consumers are float too, which
the ranking usually brings next.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, PassError
from ..model.base import Batch, ModelArtifact
from ..model.tf_env import import_tensorflow
from .accuracy_control import (
    artifact_at,
    check_full_int8,
    exclude_worst_until_gate_passes,
    with_search_result,
)
from .base import PassContext
from .tflite import (
    _CONVERT_LOCK,
    _SERVING_KEY,
    TFLiteConvertConfig,
    _Calibration,
    _check_input,
    _inspect,
    _native_stderr_silenced,
    _one_line,
)

# Validation samples the debugger runs (one at a time, with every layer computed twice):
# enough to rank layers, bounded so that a large validation set does not take minutes.
DEBUG_SAMPLES = 256
_METRIC = "noise"
_NEGLIGIBLE = 1e-6
METRIC_DESCRIPTION = "rms quantization error / median |float activation|, per layer, on the validation inputs"


@dataclass(frozen=True)
class LayerError:
    """One quantized op's output, as the debugger measured it."""

    tensor: str  # the op's output tensor name: what the debugger's denylist takes
    op: str  # builtin op name (FULLY_CONNECTED, CONV_2D, ...)
    error: float

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.tensor, "op": self.op, "error": float(f"{self.error:.6g}")}


def keep_sensitive_layers_in_float(
    full: ModelArtifact,
    make_converter: Callable[[], Any],
    calibration: _Calibration,
    config: TFLiteConvertConfig,
    ctx: PassContext,
) -> ModelArtifact:
    """``full`` if it passes the gate; else the same int8 model with the fewest of its worst
    layers in float that passes; else ``PassError`` naming the best agreement reached."""
    assert ctx.gate is not None and ctx.validation is not None
    full_summary = check_full_int8(full, ctx, config.max_float_layers, "max_float_layers")
    if full_summary["passed"]:
        return _with_details(full, [], full_summary, full_summary, ranked=0, samples=0)

    samples = _validation_samples(ctx.validation(), full, ctx.target)
    ctx.progress(f"ranking layers by int8 error on {len(samples)} validation samples")
    debugger, ranked = _rank_layers(make_converter, calibration, samples, ctx.target)

    def write(path: Path, chosen: Sequence[LayerError]) -> ModelArtifact:
        path.write_bytes(_requantize(debugger, [layer.tensor for layer in chosen], ctx.target))
        return _artifact_at(full, path, ctx.target)

    chosen, summary = exclude_worst_until_gate_passes(
        full,
        full_summary,
        ranked[: config.max_float_layers],
        write,
        lambda layer: f"{layer.tensor} ({layer.op})",
        ctx,
        unit="layer",
        suffix=".tflite",
        remove_failed=False,
    )
    final = _artifact_at(full, full.path, ctx.target)
    return _with_details(final, chosen, full_summary, summary, ranked=len(ranked), samples=len(samples))


# -- the debugger -----------------------------------------------------------------------


def _rank_layers(
    make_converter: Callable[[], Any],
    calibration: _Calibration,
    samples: list[dict[str, np.ndarray]],
    target: str,
) -> tuple[Any, list[LayerError]]:
    """The debugger (calibrated once, reused to re-quantize) and the layers, worst first."""
    tf = import_tensorflow()
    debugger: Any = None

    def dataset() -> Iterator[Sequence[np.ndarray]]:
        # The debugger feeds a list in its interpreter's input order; find that order by name.
        order = _input_order(debugger.quant_model, list(samples[0]))
        for sample in samples:
            yield [sample[name] for name in order]

    options = tf.lite.experimental.QuantizationDebugOptions(layer_direct_compare_metrics={_METRIC: _noise})
    try:
        with _debugging():
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=make_converter(), debug_dataset=dataset, debug_options=options
            )
            debugger.run()
    except DataError:
        raise
    except Exception as e:
        if calibration.error is not None:
            raise calibration.error from e
        raise PassError(
            f"target {target}: TensorFlow's quantization debugger failed: {_one_line(str(e))}"
        ) from e
    table = io.StringIO()
    debugger.layer_statistics_dump(table)
    layers = [
        LayerError(tensor=row["tensor_name"], op=row["op_name"], error=float(row[_METRIC]))
        for row in csv.DictReader(io.StringIO(table.getvalue()))
        if row.get(_METRIC) not in (None, "", "nan")
    ]
    layers = [layer for layer in layers if math.isfinite(layer.error)]
    # Ties (equal errors) keep the graph's order: the result is the same run after run.
    return debugger, sorted(layers, key=lambda layer: -layer.error)


def _noise(float_values: np.ndarray, quantized: np.ndarray, scale: float, zero_point: int) -> float:
    """RMS quantization error over the median magnitude of the float values that are not
    (numerically) zero; NaN for a sample where the layer has none, which the debugger's
    average skips."""
    reference = np.asarray(float_values, dtype=np.float64)
    if not reference.size:
        return math.nan
    dequantized = (np.asarray(quantized).astype(np.float64) - zero_point) * scale
    rms = float(np.sqrt(np.mean((dequantized - reference) ** 2)))
    magnitude = np.abs(reference)
    # Below a millionth of the largest value is rounding noise of the float op (or a ReLU's 0).
    meaningful = magnitude[magnitude > _NEGLIGIBLE * float(magnitude.max())]
    if not meaningful.size:
        return math.nan
    return rms / float(np.median(meaningful))


def _requantize(debugger: Any, denylisted: list[str], target: str) -> bytes:
    """The int8 model from the debugger's calibration, with ``denylisted`` op outputs in float."""
    tf = import_tensorflow()
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denylisted)
    try:
        with _debugging():
            # Setting options rebuilds the debug model, which fails when no quantized op is
            # left to check; the options are set all the same, and we need only the model.
            with contextlib.suppress(ValueError):
                debugger.options = options
            return bytes(debugger.get_nondebug_quantized_model())
    except Exception as e:
        raise PassError(
            f"target {target}: cannot re-quantize with {len(denylisted)} float layer(s): {_one_line(str(e))}"
        ) from e


@contextlib.contextmanager
def _debugging() -> Iterator[None]:
    """What a conversion takes: one at a time, with the converter's stderr pages and TF's
    deprecated-interpreter warnings (the debugger runs that interpreter) out of the way."""
    with _CONVERT_LOCK, _native_stderr_silenced(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated")
        yield


def _input_order(model_content: bytes, names: list[str]) -> list[str]:
    """The signature input names in the order of the model's input tensors."""
    tf = import_tensorflow()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            interpreter = tf.lite.Interpreter(model_content=model_content)
        runner = interpreter.get_signature_runner(_SERVING_KEY)
        by_index = {int(detail["index"]): name for name, detail in runner.get_input_details().items()}
        order = [by_index.get(int(detail["index"]), "") for detail in interpreter.get_input_details()]
    except (ValueError, RuntimeError):  # no signature in the debug model: one input, or the same order
        return names
    return order if sorted(order) == sorted(names) else names


def _validation_samples(batch: Batch, full: ModelArtifact, target: str) -> list[dict[str, np.ndarray]]:
    """Up to ``DEBUG_SAMPLES`` single samples, keyed by the model's native input names."""
    arrays = {}
    for spec, native in zip(full.signature.inputs, full.native_inputs, strict=True):
        if spec.name not in batch:
            raise DataError(f"target {target}: validation data has no input {spec.name!r}")
        arrays[native] = _check_input(np.asarray(batch[spec.name]), spec, target)
    count = min(len(a) for a in arrays.values()) if arrays else 0
    if count == 0:
        raise DataError(f"target {target}: the validation data has no samples")
    return [{n: a[i : i + 1] for n, a in arrays.items()} for i in range(min(count, DEBUG_SAMPLES))]


# -- results ----------------------------------------------------------------------------


def _artifact_at(full: ModelArtifact, path: Path, target: str) -> ModelArtifact:
    """``full``'s description for another model file, with that file's own facts (this also
    loads it in LiteRT: a model the runtime cannot load never reaches the gate)."""
    facts = _inspect(path, full.native_inputs, full.native_outputs, target, integer=True)
    return artifact_at(full, path, {**full.details, **facts, "size_bytes": path.stat().st_size})


def _with_details(
    model: ModelArtifact,
    float_layers: Sequence[LayerError],
    full: dict[str, Any],
    final: dict[str, Any],
    ranked: int,
    samples: int,
) -> ModelArtifact:
    found = {
        "float_layers": [layer.to_dict() for layer in float_layers],
        "layer_error": METRIC_DESCRIPTION,
        "layers_ranked": ranked,
        "debug_samples": samples,
    }
    return with_search_result(model, full, final, found)
