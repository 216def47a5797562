"""The Predictor: validate a request against the public signature, run the backend, answer.

Callers speak the *public* signature (the original model's names, float32 even when the
model file has int8 IO). The Predictor checks names, shapes and dtypes, converts the
data to the model file's own tensors (quantizing float input with the tensor's scale
and zero point), runs the backend, and maps the outputs back (de-quantized to float32).

Validation policy (every refusal is a ``BadRequestError`` naming the input):

- names: every public input present, no unknown ones;
- shape: same rank, every fixed axis equal; ``None`` axes (the batch) are free, but all
  inputs share one batch size and it is not 0;
- data: a rectangular array of numbers; strings, nulls, objects and ragged lists are
  refused, and so are booleans for a numeric input;
- dtype: integers convert to a float input; floats convert to an integer input only
  when every value is whole and in range;
- NaN and infinity are refused in float inputs: JSON cannot carry them back, a
  quantized model cannot represent them, and they are never a valid image or feature.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backends import Backend, load_backend
from .errors import BadRequestError, InferenceError, ModelLoadError, quote
from .manifest import Manifest
from .signature import IOSignature, Quantization, TensorSpec
from .telemetry import ERROR, INFERENCE, MODEL_LOADED, Telemetry


def format_shape(shape: Sequence[int | None]) -> str:
    """``(None, 8, 8, 1)``: a shape as Python prints a tuple."""
    return repr(tuple(shape))


def to_array(name: str, value: Any) -> np.ndarray:
    """``value`` (nested lists, numbers, an array) as an ndarray; refuses ragged or mixed data.

    Booleans mixed with numbers are refused (numpy would read them as 1 and 0); a list
    that holds only booleans becomes a bool array, which only a boolean input accepts.
    """
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except RecursionError as e:
            raise BadRequestError(f"input {quote(name)}: nested too deeply") from e
        except (ValueError, TypeError, OverflowError) as e:
            raise BadRequestError(
                f"input {quote(name)}: not a rectangular array (nested lists of different lengths?)"
            ) from e
        if arr.dtype.kind in "iuf" and isinstance(value, list | tuple) and _holds_bools(value, arr):
            raise BadRequestError(
                f"input {quote(name)}: mixes booleans (true/false) with numbers; send numbers only"
            )
    if arr.dtype.kind == "O":
        raise BadRequestError(
            f"input {quote(name)}: not an array of numbers "
            "(it holds null, objects or lists of different lengths)"
        )
    return arr


def _holds_bools(value: list[Any] | tuple[Any, ...], arr: np.ndarray) -> bool:
    """Whether nested ``value``, read by numpy as the numeric ``arr``, has a bool among its leaves.

    A bool reads as exactly 0 or 1, so data without those values is cleared by one
    vectorized test; otherwise the leaves are flattened and typed in C (``chain``,
    ``map``, ``set``): no Python loop per element.
    """
    if not bool(((arr == 0) | (arr == 1)).any()):
        return False
    leaves: Any = value
    for _ in range(arr.ndim - 1):
        leaves = itertools.chain.from_iterable(leaves)
    return bool in set(map(type, leaves))


def _describe_kind(dtype: np.dtype) -> str:
    return {"b": "booleans", "U": "strings", "S": "bytes", "c": "complex numbers"}.get(
        dtype.kind, f"{dtype.name} values"
    )


def coerce(name: str, arr: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    """``arr`` converted to ``dtype`` when no value changes meaning; else ``BadRequestError``."""
    target = np.dtype(dtype)
    kind = arr.dtype.kind
    if arr.dtype == target:
        out = arr
    elif target.kind == "b":
        raise BadRequestError(f"input {quote(name)}: expected booleans, got {_describe_kind(arr.dtype)}")
    elif kind not in "iuf":
        raise BadRequestError(
            f"input {quote(name)}: expected numbers ({target.name}), got {_describe_kind(arr.dtype)}"
        )
    elif target.kind == "f":
        with np.errstate(over="ignore"):
            out = arr.astype(target)
    elif target.kind in "iu":
        if kind == "f" and not bool(np.all(np.isfinite(arr) & (arr == np.round(arr)))):
            raise BadRequestError(
                f"input {quote(name)}: expected integers ({target.name}), got fractional or non-finite values"
            )
        info = np.iinfo(target)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise BadRequestError(
                f"input {quote(name)}: values outside the {target.name} range [{info.min}, {info.max}]"
            )
        out = arr.astype(target)
    else:
        raise BadRequestError(f"input {quote(name)}: cannot convert {arr.dtype.name} to {target.name}")
    if target.kind == "f" and not bool(np.all(np.isfinite(out))):
        raise BadRequestError(
            f"input {quote(name)}: contains NaN or infinity (or values beyond the {target.name} range)"
        )
    return out


def check_shape(name: str, arr: np.ndarray, spec: TensorSpec) -> None:
    """Same rank, fixed axes equal; ``BadRequestError`` naming both shapes otherwise."""
    expected = spec.shape
    if arr.ndim == len(expected) and all(
        e is None or e == n for e, n in zip(expected, arr.shape, strict=True)
    ):
        return
    hint = ""
    if arr.ndim == len(expected) - 1 and all(
        e is None or e == n for e, n in zip(expected[1:], arr.shape, strict=True)
    ):
        hint = " (missing the batch axis?)"
    raise BadRequestError(
        f"input {quote(name)}: shape {format_shape(arr.shape)} does not match {format_shape(expected)}{hint}"
    )


def quantize(x: np.ndarray, dtype: str | np.dtype, q: Quantization) -> np.ndarray:
    """Real values to the integer tensor: ``round(x / scale) + zero_point``, clipped to ``dtype``."""
    target = np.dtype(dtype)
    info = np.iinfo(target)
    scaled = np.round(np.asarray(x, dtype=np.float32) / np.float32(q.scale)) + q.zero_point
    return np.clip(scaled, info.min, info.max).astype(target)


def dequantize(x: np.ndarray, q: Quantization) -> np.ndarray:
    """Integer tensor to real values: ``scale * (x - zero_point)``, float32."""
    return ((x.astype(np.float32) - np.float32(q.zero_point)) * np.float32(q.scale)).astype(np.float32)


def batch_size(arrays: Mapping[str, Any]) -> int:
    """Length of the first axis of the first array with one (1 for scalars only)."""
    for value in arrays.values():
        shape = np.shape(value)
        if shape:
            return int(shape[0])
    return 1


@dataclass(frozen=True)
class _Binding:
    """A public tensor and the model-file tensor it maps to."""

    public: TensorSpec
    native: TensorSpec

    @property
    def quantized(self) -> bool:
        return self.native.quantization is not None and np.dtype(self.public.dtype).kind == "f"


def _bind(
    kind: str, public: Sequence[TensorSpec], native_names: Sequence[str], native: Sequence[TensorSpec]
) -> tuple[_Binding, ...]:
    by_name = {t.name: t for t in native}
    names = list(native_names) or [t.name for t in public]
    if len(names) != len(public):
        raise ModelLoadError(
            f"{len(public)} public {kind}s {[t.name for t in public]} but {len(names)} native names {names}"
        )
    if kind == "input" and len(names) != len(by_name):
        # Every model input must be fed; extra model outputs are merely not returned.
        raise ModelLoadError(
            f"the model file has {len(by_name)} inputs {sorted(by_name)}, the signature names {len(names)}"
        )
    bindings = []
    for spec, native_name in zip(public, names, strict=True):
        if native_name not in by_name:
            raise ModelLoadError(
                f"model {kind} {native_name!r} (public {spec.name!r}) is not in the model file; "
                f"it has {', '.join(repr(n) for n in sorted(by_name))}"
            )
        binding = _Binding(public=spec, native=by_name[native_name])
        pub, nat = np.dtype(spec.dtype), np.dtype(binding.native.dtype)
        same_family = (pub.kind == nat.kind == "f") or (pub.kind in "iu" and nat.kind in "iu")
        if not (pub == nat or binding.quantized or same_family):
            raise ModelLoadError(
                f"model {kind} {spec.name!r}: public dtype {pub.name} cannot map to the model's "
                f"{nat.name} tensor {native_name!r}"
                + (" (no quantization parameters)" if nat.kind in "iu" and pub.kind == "f" else "")
            )
        bindings.append(binding)
    return tuple(bindings)


class Predictor:
    """A model ready to answer requests in its public signature."""

    def __init__(
        self,
        backend: Backend,
        signature: IOSignature,
        native_inputs: Sequence[str] = (),
        native_outputs: Sequence[str] = (),
        telemetry: Telemetry | None = None,
    ) -> None:
        self.backend = backend
        self.signature = signature
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.manifest: Manifest | None = None  # set by from_artifact
        self._inputs = _bind("input", signature.inputs, native_inputs, backend.signature.inputs)
        self._outputs = _bind("output", signature.outputs, native_outputs, backend.signature.outputs)

    @classmethod
    def from_artifact(
        cls, root: Path, telemetry: Telemetry | None = None, *, manifest: Manifest | None = None
    ) -> Predictor:
        """Load the artifact at ``root``: its manifest (unless given), backend and model file."""
        start = time.perf_counter()
        root = Path(root)
        if manifest is None:
            manifest = Manifest.load(root)
        model_path = (root / manifest.model.file).resolve()
        if not model_path.is_relative_to(root.resolve()):
            raise ModelLoadError(f"edgepack.json: model file {manifest.model.file!r} is outside the artifact")
        # ``batching`` configures the server's dynamic batcher (batching.py), not the backend.
        settings = {k: v for k, v in manifest.runtime.settings.items() if k != "batching"}
        backend = load_backend(manifest.runtime.backend, model_path, settings)
        predictor = cls(
            backend,
            manifest.model.signature,
            manifest.model.native_inputs,
            manifest.model.native_outputs,
            telemetry,
        )
        predictor.manifest = manifest
        predictor.telemetry.emit(
            MODEL_LOADED,
            load_ms=(time.perf_counter() - start) * 1e3,
            backend=backend.name,
            model=manifest.name,
            version=manifest.version,
            file=manifest.model.file,
            precision=manifest.model.precision,
            runtime=backend.describe(),
        )
        return predictor

    def predict(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run one batch: public input names -> data; returns public output names -> arrays."""
        start = time.perf_counter()
        try:
            feeds, batch = self._prepare(inputs)
            run_start = time.perf_counter()
            try:
                raw = self.backend.run(feeds)
            except InferenceError:
                raise
            except Exception as e:
                raise InferenceError(f"backend {self.backend.name} failed: {type(e).__name__}: {e}") from e
            run_ms = (time.perf_counter() - run_start) * 1e3
            outputs = self._finish(raw)
        except InferenceError as e:
            stage = "validate" if isinstance(e, BadRequestError) else "predict"
            self.telemetry.emit(ERROR, stage=stage, code=e.code, status=e.status, message=e.message)
            raise
        self.telemetry.emit(
            INFERENCE,
            latency_ms=(time.perf_counter() - start) * 1e3,
            run_ms=run_ms,
            batch_size=batch,
            backend=self.backend.name,
        )
        return outputs

    def validate(self, inputs: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], int]:
        """``inputs`` checked against the public signature and converted to its dtypes.

        Returns (public name -> array, batch size); ``BadRequestError`` as ``predict`` raises.
        The dynamic batcher checks each request with it before merging them.
        """
        if not isinstance(inputs, Mapping):
            raise BadRequestError(
                f"inputs must be a mapping of input name to data, got {type(inputs).__name__}"
            )
        expected = self.signature.input_names
        for name in inputs:
            if name not in expected:
                raise BadRequestError(
                    f"unknown input {quote(name)}; the model expects {', '.join(repr(n) for n in expected)}"
                )
        arrays: dict[str, np.ndarray] = {}
        batches: dict[str, int] = {}
        for binding in self._inputs:
            name = binding.public.name
            if name not in inputs:
                raise BadRequestError(
                    f"missing input {name!r}; the model expects {', '.join(repr(n) for n in expected)}"
                )
            arr = to_array(name, inputs[name])
            arr = coerce(name, arr, binding.public.dtype)
            check_shape(name, arr, binding.public)
            if arr.ndim:
                if arr.shape[0] == 0:
                    raise BadRequestError(f"input {name!r}: empty batch (shape {format_shape(arr.shape)})")
                batches[name] = arr.shape[0]
            arrays[name] = arr
        if len(set(batches.values())) > 1:
            sizes = ", ".join(f"{n!r} has {b}" for n, b in batches.items())
            raise BadRequestError(f"inputs have different batch sizes: {sizes}")
        return arrays, next(iter(batches.values()), 1)

    def _prepare(self, inputs: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], int]:
        arrays, batch = self.validate(inputs)
        feeds = {b.native.name: self._to_native(arrays[b.public.name], b) for b in self._inputs}
        return feeds, batch

    @staticmethod
    def _to_native(arr: np.ndarray, binding: _Binding) -> np.ndarray:
        native = binding.native
        if binding.quantized:
            assert native.quantization is not None
            return quantize(arr, native.dtype, native.quantization)
        if arr.dtype != np.dtype(native.dtype):
            return coerce(binding.public.name, arr, native.dtype)
        return arr

    def _finish(self, raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs: dict[str, np.ndarray] = {}
        for binding in self._outputs:
            if binding.native.name not in raw:
                raise InferenceError(
                    f"backend {self.backend.name} returned no output {binding.native.name!r}"
                )
            arr = np.asarray(raw[binding.native.name])
            if binding.quantized:
                assert binding.native.quantization is not None
                arr = dequantize(arr, binding.native.quantization)
            public_dtype = np.dtype(binding.public.dtype)
            if arr.dtype != public_dtype:
                arr = arr.astype(public_dtype)
            outputs[binding.public.name] = arr
        return outputs
