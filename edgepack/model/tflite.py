"""TFLite models (pass-through), run with the LiteRT interpreter.

Names follow the runtime's LiteRT backend, so that the manifest's native names are the
ones the artifact's backend reports: the keys of the ``serving_default`` signature when
the model has one (what the converter keeps from ``keras.Input(name=...)``; outputs are
``output_0``...), else the interpreter's tensor names. The order is the model's: inputs
and outputs as the interpreter lists them (the signature lists its keys alphabetically),
except that outputs named ``output_0``, ``output_1``... (TF's positional names for a Keras
export) are put in that order, which the interpreter's output order need not follow.

Quantized IO (int8/uint8/int16 with a scale) is public float32: ``predict`` quantizes
inputs with each tensor's scale and zero point and de-quantizes outputs, so the source
is float in, float out like every other.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendMissingError, DataError
from ..runtime.signature import IOSignature, Quantization, TensorSpec
from .base import Batch, Precision
from .loader import NameMap, model_error
from .tf_env import quiet_native_stderr, wants_quiet

SIGNATURE_KEY = "serving_default"  # the signature the runtime's LiteRT backend names tensors by
_POSITIONAL_OUTPUT = re.compile(r"^output_(\d+)$")
_QUANTIZED_DTYPES = ("int8", "uint8", "int16")


def _interpreter_class() -> tuple[Any, str]:
    try:
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise BackendMissingError("ai_edge_litert", "litert") from e
    return Interpreter, str(getattr(ai_edge_litert, "__version__", "unknown"))


@dataclass(frozen=True)
class _Tensor:
    name: str  # native name: the signature key, else the tensor name
    detail: dict[str, Any]  # the interpreter's tensor details (index, dtype, shapes, quantization)


class TFLiteModelSource:
    """A ``.tflite`` flatbuffer run as it is (no conversion)."""

    def __init__(
        self,
        path: Path,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
    ) -> None:
        interpreter_class, litert_version = _interpreter_class()
        path = Path(path)
        if not path.is_file():
            raise model_error(path, "not a TFLite model file")
        try:
            # LiteRT prints "Created TensorFlow Lite XNNPACK delegate" on the first allocation.
            with quiet_native_stderr() if wants_quiet() else contextlib.nullcontext():
                self._interpreter = interpreter_class(model_path=str(path))
                self._interpreter.allocate_tensors()
            self._inputs, self._outputs, signature_key, self._runner = _tensors(self._interpreter)
        except Exception as e:
            raise model_error(path, "cannot load the TFLite model", e) from e
        native = IOSignature(
            inputs=tuple(_spec(t) for t in self._inputs),
            outputs=tuple(_spec(t) for t in self._outputs),
        )
        public_dtypes = {s.name: "float32" for s in (*native.inputs, *native.outputs) if s.quantization}
        self._names = NameMap.build(path, native, input_names, output_names, public_dtypes=public_dtypes)
        quantized = {
            s.name: {"dtype": s.dtype, **s.quantization.to_dict()}
            for s in (*native.inputs, *native.outputs)
            if s.quantization
        }
        self.artifact = self._names.artifact(
            "tflite",
            precision=_precision(self._interpreter, bool(quantized)),
            details={
                "framework": "litert",
                "litert_version": litert_version,
                "signature": signature_key,
                "quantized_io": quantized,
            },
        )

    def predict(self, batch: Batch) -> Batch:
        """Run the interpreter on one batch: float in, float out (public names in and out)."""
        feeds = self._names.feeds(batch)
        sizes = {arr.shape[0] if arr.ndim else 1 for _, _, arr in feeds}
        if len(sizes) != 1:
            raise DataError(f"{self.artifact.path}: inputs have different batch sizes {sorted(sizes)}")
        n = sizes.pop()
        arrays = [arr for _, _, arr in feeds]
        if n != 1 and any(list(t.detail["shape_signature"][:1]) == [1] for t in self._inputs):
            # A model converted with a fixed batch of one: run it sample by sample.
            parts = [self._run([arr[i : i + 1] for arr in arrays]) for i in range(n)]
            return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        return self._run(arrays)

    def _run(self, arrays: list[np.ndarray]) -> Batch:
        feeds = {t.name: _to_native(arr, t.detail) for t, arr in zip(self._inputs, arrays, strict=True)}
        try:
            # A signature outside subgraph 0 is reached only through its runner.
            raw = dict(self._runner(**feeds)) if self._runner is not None else self._invoke(feeds)
        except Exception as e:
            raise model_error(self.artifact.path, "TFLite prediction failed", e) from e
        return self._names.outputs(
            {t.name: _to_public(np.asarray(raw[t.name]), t.detail) for t in self._outputs}
        )

    def _invoke(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        it = self._interpreter
        current = {d["index"]: tuple(int(x) for x in d["shape"]) for d in it.get_input_details()}
        resized = False
        for t in self._inputs:
            shape = feeds[t.name].shape
            if current[t.detail["index"]] != shape:
                # strict: only the axes the model left dynamic may change
                it.resize_tensor_input(t.detail["index"], list(shape), strict=True)
                resized = True
        if resized:
            it.allocate_tensors()
        for t in self._inputs:
            it.set_tensor(t.detail["index"], feeds[t.name])
        it.invoke()
        return {t.name: it.get_tensor(t.detail["index"]) for t in self._outputs}


def _tensors(interpreter: Any) -> tuple[list[_Tensor], list[_Tensor], str | None, Any]:
    """Inputs and outputs in the model's order, the signature used, and its runner when needed."""
    main_in = list(interpreter.get_input_details())
    main_out = list(interpreter.get_output_details())
    if SIGNATURE_KEY not in interpreter.get_signature_list():
        inputs = [_Tensor(str(d["name"]), d) for d in main_in]
        return inputs, [_Tensor(str(d["name"]), d) for d in main_out], None, None
    runner = interpreter.get_signature_runner(SIGNATURE_KEY)
    inputs = [_Tensor(str(k), d) for k, d in runner.get_input_details().items()]
    outputs = [_Tensor(str(k), d) for k, d in runner.get_output_details().items()]
    in_pos = {int(d["index"]): i for i, d in enumerate(main_in)}
    out_pos = {int(d["index"]): i for i, d in enumerate(main_out)}
    main_subgraph = {int(t.detail["index"]) for t in inputs} == set(in_pos) and {
        int(t.detail["index"]) for t in outputs
    } == set(out_pos)
    if main_subgraph:
        inputs.sort(key=lambda t: in_pos[int(t.detail["index"])])
        outputs.sort(key=lambda t: out_pos[int(t.detail["index"])])
    positions = [_output_position(t.name) for t in outputs]
    if all(p is not None for p in positions):
        order = sorted(range(len(outputs)), key=lambda i: positions[i] or 0)
        outputs = [outputs[i] for i in order]
    return inputs, outputs, SIGNATURE_KEY, None if main_subgraph else runner


def _output_position(key: str) -> int | None:
    match = _POSITIONAL_OUTPUT.match(key)
    return int(match.group(1)) if match else None


def _spec(tensor: _Tensor) -> TensorSpec:
    detail = tensor.detail
    scale, zero_point = detail.get("quantization", (0.0, 0))
    dtype = np.dtype(detail["dtype"]).name
    quantization = (
        Quantization(float(scale), int(zero_point)) if scale and dtype in _QUANTIZED_DTYPES else None
    )
    signature = detail.get("shape_signature")
    dims = signature if signature is not None and len(signature) else detail["shape"]
    return TensorSpec(
        name=tensor.name,
        dtype=dtype,
        shape=tuple(None if int(d) < 0 else int(d) for d in dims),
        quantization=quantization,
    )


def _to_native(arr: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if scale and dtype.name in _QUANTIZED_DTYPES:
        info = np.iinfo(dtype)
        q = np.round(arr.astype(np.float32) / np.float32(scale)) + zero_point
        return np.clip(q, info.min, info.max).astype(dtype)
    return np.ascontiguousarray(arr, dtype=dtype)


def _to_public(arr: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if scale and np.dtype(detail["dtype"]).name in _QUANTIZED_DTYPES:
        return ((arr.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)
    return np.array(arr, copy=True)


def _precision(interpreter: Any, quantized_io: bool) -> Precision:
    """Best guess at how the model was quantized, from the dtypes of its tensors."""
    counts: dict[str, int] = {}
    for detail in interpreter.get_tensor_details():
        name = np.dtype(detail["dtype"]).name
        counts[name] = counts.get(name, 0) + 1
    if counts.get("int16", 0) and counts.get("int8", 0):
        return "int16x8"
    if quantized_io or counts.get("int8", 0) > counts.get("float32", 0):
        return "int8"
    if counts.get("int8", 0):
        return "dynamic"  # int8 weights, float activations
    if counts.get("float16", 0):
        return "fp16"
    return "fp32"
