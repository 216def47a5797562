"""``tflite-convert``: Keras or SavedModel to a TFLite flatbuffer, optionally quantized.

Modes (TensorFlow's post-training options):
- ``fp32``: plain conversion, float weights and activations.
- ``fp16``: float16 weights, dequantized at load; about half the size.
- ``dynamic``: int8 weights, float activations quantized on the fly; no data needed.
- ``int8``: full-integer quantization calibrated on representative data; about a
  quarter of the size. ``io_dtype: int8`` also makes the model's inputs and outputs
  int8 (what NPUs and microcontrollers want); ``float32`` keeps float IO with
  quantize/dequantize at the edges.
- ``int16x8``: int16 activations, int8 weights; calibrated; more accurate than int8
  for models with wide activation ranges.

``accuracy_control`` (int8): when the full-integer model fails the project's fidelity
gate, the layers with the largest quantization error on the validation data are kept
in float, worst first, until the gate passes (``tflite_mixed``).

Keras models go through a SavedModel whose serving signature we write ourselves, so
the names inside the ``.tflite`` are the model's own input and output names (Keras'
own export would call the outputs ``output_0``...). The converter's representative
dataset is fed by those names, per sample.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from ..errors import DataError, ModelError, PassError, UnsupportedOpError
from ..model.base import Batch, ModelArtifact, ModelFormat
from ..model.tf_env import import_keras, import_tensorflow, quiet_native_stderr
from ..runtime.signature import IOSignature, TensorSpec
from .base import Pass, PassConfig, PassContext

Mode = Literal["fp32", "fp16", "dynamic", "int8", "int16x8"]

_CALIBRATED_MODES = frozenset({"int8", "int16x8"})
_SERVING_KEY = "serving_default"
# Ops that only move data between float and integer at the model's edges (or dequantize
# fp16 weights): not float compute.
_CONVERSION_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})

# The converter writes pages of MLIR diagnostics to the process's stderr; it is also in
# the exception we keep as the cause. Redirecting fd 2 is process-wide, so conversions
# (which TensorFlow does not promise are thread-safe anyway) take turns.
_CONVERT_LOCK = threading.Lock()


class TFLiteConvertConfig(PassConfig):
    mode: Mode = Field(default="int8", description="fp32 | fp16 | dynamic | int8 | int16x8")
    io_dtype: Literal["float32", "int8"] = Field(
        default="float32",
        description="int8 mode only: int8 gives a model with int8 inputs and outputs, "
        "float32 keeps float IO around the integer model",
    )
    calibration_samples: int | None = Field(
        default=None, gt=0, description="use at most this many calibration samples (default: all)"
    )
    allow_float_ops: bool = Field(
        default=True,
        description="int8/int16x8: ops with no integer kernel stay in float (fine on CPUs); "
        "false rejects such a model, naming the op (NPUs and the Edge TPU need every op integer)",
    )
    per_channel: bool = Field(
        default=True,
        description="quantize conv/dense weights per output channel; false = per tensor "
        "(some accelerators support only that)",
    )
    allow_custom_ops: bool = Field(
        default=False,
        description="keep ops TFLite has no kernel for as custom ops; the runtime must then register them",
    )
    signature_key: str | None = Field(
        default=None,
        min_length=1,
        description="SavedModel inputs: the signature to convert (default: the one the model "
        "source chose, serving_default or the only one)",
    )
    accuracy_control: bool = Field(
        default=False,
        description="int8: when the full-integer model fails the fidelity gate, keep the layers "
        "with the largest quantization error on the validation data in float, worst first, until "
        "it passes (needs validation data); the result stays int8 elsewhere",
    )
    max_float_layers: int = Field(
        default=8,
        ge=0,
        description="accuracy_control: at most this many layers kept in float; when the gate still "
        "fails, the pass fails and the build tries the next variant",
    )

    @model_validator(mode="after")
    def _io_dtype_needs_int8(self) -> TFLiteConvertConfig:
        if self.io_dtype == "int8" and self.mode != "int8":
            raise ValueError(f"io_dtype int8 needs mode int8 (mode is {self.mode})")
        if self.accuracy_control:
            # Layers kept in float take and give float tensors: an all-integer model cannot have them.
            if self.mode != "int8":
                raise ValueError(f"accuracy_control needs mode int8 (mode is {self.mode})")
            if self.io_dtype != "float32" or not self.allow_float_ops:
                raise ValueError(
                    "accuracy_control keeps layers in float: "
                    "it needs io_dtype float32 and allow_float_ops true"
                )
        return self


class TFLiteConvert(Pass):
    name: ClassVar[str] = "tflite-convert"
    config_model: ClassVar[type[PassConfig]] = TFLiteConvertConfig
    accepts: ClassVar[frozenset[ModelFormat]] = frozenset({"keras", "savedmodel"})
    produces: ClassVar[ModelFormat] = "tflite"
    needs_calibration: ClassVar[bool] = True

    def requires_calibration(self, config: PassConfig) -> bool:
        assert isinstance(config, TFLiteConvertConfig)
        return config.mode in _CALIBRATED_MODES

    def requires_validation(self, config: PassConfig) -> bool:
        assert isinstance(config, TFLiteConvertConfig)
        return config.accuracy_control

    def run(self, model: ModelArtifact, config: PassConfig, ctx: PassContext) -> ModelArtifact:
        """Convert ``model`` to ``ctx.work_dir/model.tflite``; the public signature is unchanged."""
        assert isinstance(config, TFLiteConvertConfig)
        if model.format not in self.accepts:
            raise PassError(
                f"target {ctx.target}: tflite-convert takes keras or savedmodel models, not {model.format}"
            )
        if self.requires_calibration(config) and ctx.calibration is None:
            raise DataError(
                f"target {ctx.target}: {config.mode} needs calibration data (calibration: in edgepack.yaml)"
            )
        if config.accuracy_control:
            from .accuracy_control import check_gate_inputs

            check_gate_inputs(ctx)
        tf = import_tensorflow()
        source_inputs = _names(model.native_inputs, model.signature.input_names, "inputs")
        source_outputs = _names(model.native_outputs, model.signature.output_names, "outputs")

        if model.format == "keras":
            ctx.progress(f"exporting {model.path.name} to a SavedModel")
            saved_model = _export_keras(tf, model, source_inputs, source_outputs, ctx.work_dir / "savedmodel")
        else:
            saved_model = _prepare_saved_model(
                tf, model, config.signature_key, source_inputs, source_outputs, ctx.work_dir / "savedmodel"
            )

        calibration = None
        if config.mode in _CALIBRATED_MODES:
            assert ctx.calibration is not None
            calibration = _Calibration(
                ctx.calibration, model.signature, source_inputs, config.calibration_samples, ctx.target
            )

        frozen_from: list[Any] = []  # the loaded SavedModel must outlive the conversion

        def make_converter() -> Any:
            try:
                if model.format == "savedmodel":
                    # From the signature's concrete function, with the loaded object to freeze
                    # its variables: from_saved_model keeps resource variables of a tf.Module
                    # (READ_VARIABLE/VAR_HANDLE ops) that int8 cannot take and LiteRT answers NaN.
                    loaded = tf.saved_model.load(str(saved_model))
                    frozen_from.append(loaded)
                    function = loaded.signatures[_SERVING_KEY]
                    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], loaded)
                else:
                    converter = tf.lite.TFLiteConverter.from_saved_model(
                        str(saved_model), signature_keys=[_SERVING_KEY]
                    )
            except Exception as e:
                raise PassError(
                    f"target {ctx.target}: the TFLite converter cannot read the model: {_one_line(str(e))}"
                ) from e
            _configure(tf, converter, config, calibration)
            return converter

        converter = make_converter()
        ctx.progress(
            f"converting to TFLite {config.mode}"
            + (f" (io {config.io_dtype})" if config.mode == "int8" else "")
        )
        flatbuffer = _convert(converter, config, ctx.target, calibration)

        out_path = ctx.work_dir / "model.tflite"
        out_path.write_bytes(flatbuffer)
        facts = _inspect(
            out_path, source_inputs, source_outputs, ctx.target, config.mode in _CALIBRATED_MODES
        )
        if config.mode in _CALIBRATED_MODES and not config.allow_float_ops and facts["float_ops"]:
            raise UnsupportedOpError(
                facts["float_ops"][0],
                ctx.target,
                f"no {config.mode} kernel, so it would run in float; allow_float_ops: true keeps it in float",
            )
        details: dict[str, Any] = {
            "mode": config.mode,
            "io_dtype": config.io_dtype if config.mode == "int8" else "float32",
            "converter": {"tensorflow": str(tf.__version__)},
            "source_format": model.format,
            "per_channel": config.per_channel,
            "calibration_samples": calibration.used if calibration is not None else None,
            "calibration_ranges": calibration.ranges() if calibration is not None else None,
            "size_bytes": len(flatbuffer),
            **facts,
        }
        result = ModelArtifact(
            path=out_path,
            format="tflite",
            signature=model.signature,
            precision=config.mode,
            native_inputs=source_inputs,
            native_outputs=source_outputs,
            details=details,
        )
        if not config.accuracy_control:
            return result
        from .tflite_mixed import keep_sensitive_layers_in_float

        assert calibration is not None
        return keep_sensitive_layers_in_float(result, make_converter, calibration, config, ctx)


# -- TensorFlow ---------------------------------------------------------------------


def _names(native: tuple[str, ...], public: tuple[str, ...], kind: str) -> tuple[str, ...]:
    """The names inside the source model, aligned with the public signature."""
    if not native:
        return public
    if len(native) != len(public):
        raise PassError(
            f"the model's native {kind} {list(native)} do not align with its signature {list(public)}"
        )
    return native


def _export_keras(
    tf: Any, model: ModelArtifact, inputs: tuple[str, ...], outputs: tuple[str, ...], dest: Path
) -> Path:
    """Write a SavedModel whose serving signature takes and returns the Keras model's own names."""
    keras = import_keras()
    try:
        net = keras.saving.load_model(model.path, compile=False)
    except Exception as e:
        raise ModelError(f"cannot load the Keras model: {_one_line(str(e))}", where=str(model.path)) from e

    keras_inputs = [t.name for t in getattr(net, "inputs", None) or []]
    by_name = bool(keras_inputs) and set(inputs) <= set(keras_inputs)
    if keras_inputs and not by_name and len(keras_inputs) != len(inputs):
        raise PassError(
            f"the Keras model's inputs {keras_inputs} do not match the signature's {list(inputs)}",
            where=str(model.path),
        )
    specs_by_name = {spec.name: spec for spec in model.signature.inputs}
    public_inputs = model.signature.input_names
    specs = [
        tf.TensorSpec(
            shape=list(specs_by_name[public].shape), dtype=tf.as_dtype(specs_by_name[public].dtype), name=name
        )
        for public, name in zip(public_inputs, inputs, strict=True)
    ]

    def serve(*args: Any) -> dict[str, Any]:
        if keras_inputs:
            keys = inputs if by_name else keras_inputs
            tensors = dict(zip(keys, args, strict=True))
            # Call with the structure the model was built with (a tensor, a list or a
            # dict), filled by input name.
            structure = keras.tree.map_structure(lambda t: tensors[t.name], _input_structure(net))
            result = net(structure, training=False)
        else:
            result = net(args[0] if len(args) == 1 else list(args), training=False)
        return _name_outputs(net, result, outputs, keras)

    archive = keras.export.ExportArchive()
    archive.track(net)
    archive.add_endpoint(_SERVING_KEY, serve, input_signature=specs)
    try:
        archive.write_out(str(dest), verbose=False)
    except Exception as e:
        raise PassError(
            f"cannot export the Keras model to a SavedModel: {_one_line(str(e))}", where=str(model.path)
        ) from e
    return dest


def _input_structure(net: Any) -> Any:
    """The structure (tensor, list or dict) the model was built with.

    ``net.input`` raises "has never been called" on a Sequential model loaded from a file;
    its ``inputs`` list is always defined, and a Sequential model takes one bare tensor."""
    try:
        return net.input
    except (AttributeError, ValueError):
        inputs = list(net.inputs)
        return inputs[0] if len(inputs) == 1 else inputs


def _name_outputs(net: Any, result: Any, outputs: tuple[str, ...], keras: Any) -> dict[str, Any]:
    if isinstance(result, dict) and set(outputs) <= set(result):
        return {name: result[name] for name in outputs}
    flat = keras.tree.flatten(result)
    keras_names = list(getattr(net, "output_names", None) or [])
    if len(keras_names) == len(flat) and set(outputs) <= set(keras_names):
        by_name = dict(zip(keras_names, flat, strict=True))
        return {name: by_name[name] for name in outputs}
    if len(flat) == len(outputs):
        return dict(zip(outputs, flat, strict=True))
    raise PassError(
        f"the Keras model has {len(flat)} outputs ({keras_names}); the signature names {list(outputs)}"
    )


def _prepare_saved_model(
    tf: Any,
    model: ModelArtifact,
    key: str | None,
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    dest: Path,
) -> Path:
    """The SavedModel to convert, with the chosen signature under ``serving_default``.

    The ``.tflite`` keeps the SavedModel's signature key and the runtime looks for
    ``serving_default``; a model served under another key is re-saved (rare, cheap).
    """
    path = model.path
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as e:
        raise ModelError(f"cannot load the SavedModel: {_one_line(str(e))}", where=str(path)) from e
    signatures = dict(loaded.signatures)
    key = key or model.details.get("signature")
    if key is None:
        key = _SERVING_KEY if _SERVING_KEY in signatures or len(signatures) != 1 else next(iter(signatures))
    if key not in signatures:
        raise ModelError(
            f"SavedModel has no signature {key!r} (has: {', '.join(sorted(signatures)) or 'none'})",
            where=str(path),
        )
    fn = signatures[key]
    have_in = set(fn.structured_input_signature[1])
    have_out = set(fn.structured_outputs)
    missing = [n for n in inputs if n not in have_in] + [n for n in outputs if n not in have_out]
    if missing:
        raise PassError(
            f"signature {key!r} has no tensor {', '.join(missing)} "
            f"(inputs: {', '.join(sorted(have_in))}; outputs: {', '.join(sorted(have_out))})",
            where=str(path),
        )
    if key == _SERVING_KEY:
        return path
    try:
        tf.saved_model.save(loaded, str(dest), signatures={_SERVING_KEY: fn})
    except Exception as e:
        raise PassError(f"cannot re-save signature {key!r} as {_SERVING_KEY}: {_one_line(str(e))}") from e
    return dest


def _configure(
    tf: Any, converter: Any, config: TFLiteConvertConfig, calibration: _Calibration | None
) -> None:
    """Translate our config into the converter's attributes: the one place that does."""
    converter.allow_custom_ops = config.allow_custom_ops
    mode = config.mode
    if mode == "fp32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        converter.target_spec.supported_types = [tf.float16]
        return
    if mode == "dynamic":
        return
    assert calibration is not None
    converter.representative_dataset = calibration
    # Float builtins stay listed so that an op without an integer kernel can fall back to
    # float; whether that is acceptable is checked on the result (allow_float_ops).
    if mode == "int8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
        if config.io_dtype == "int8":
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    else:  # int16x8
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    if not config.per_channel:
        converter._experimental_disable_per_channel = True


# -- calibration --------------------------------------------------------------------


class _Calibration:
    """The converter's representative dataset: one sample per yield, keyed by the
    SavedModel signature's input names, in the model's dtypes."""

    def __init__(
        self,
        batches: Callable[[], Iterator[Batch]],
        signature: IOSignature,
        source_inputs: tuple[str, ...],
        limit: int | None,
        target: str,
    ) -> None:
        self._batches = batches
        self._specs = list(zip(signature.inputs, source_inputs, strict=True))
        self._limit = limit
        self._target = target
        self.used = 0
        self.error: DataError | None = None
        self._low: dict[str, float] = {}
        self._high: dict[str, float] = {}

    def ranges(self) -> dict[str, list[float]]:
        """Min and max of each input over the samples used: the first thing to look at
        when a calibrated model fails the fidelity gate."""
        return {name: [self._low[name], self._high[name]] for name in self._low}

    def __call__(self) -> Iterator[dict[str, np.ndarray]]:
        self.used = 0
        self._low.clear()
        self._high.clear()
        try:
            for batch in self._batches():
                for sample in self._samples(batch):
                    if self._limit is not None and self.used >= self._limit:
                        return
                    self.used += 1
                    self._track(sample)
                    yield sample
        except DataError as e:
            # The converter may wrap or swallow what a generator raises: keep ours.
            self.error = e
            raise
        if self.used == 0:
            self.error = DataError(f"target {self._target}: the calibration data has no samples")
            raise self.error

    def _track(self, sample: dict[str, np.ndarray]) -> None:
        for spec, native in self._specs:
            array = sample[native]
            if array.size and np.issubdtype(array.dtype, np.number):
                low, high = float(array.min()), float(array.max())
                self._low[spec.name] = min(low, self._low.get(spec.name, low))
                self._high[spec.name] = max(high, self._high.get(spec.name, high))

    def _samples(self, batch: Batch) -> Iterator[dict[str, np.ndarray]]:
        arrays = {}
        for spec, _ in self._specs:
            if spec.name not in batch:
                raise DataError(
                    f"target {self._target}: calibration batch has no input {spec.name!r} "
                    f"(has: {', '.join(batch) or 'nothing'})"
                )
            arrays[spec.name] = _check_input(np.asarray(batch[spec.name]), spec, self._target)
        counts = {len(a) for a in arrays.values()}
        if len(counts) > 1:
            raise DataError(f"target {self._target}: calibration inputs differ in sample count")
        for i in range(counts.pop() if counts else 0):
            yield {native: arrays[spec.name][i : i + 1] for spec, native in self._specs}


def _check_input(array: np.ndarray, spec: TensorSpec, target: str) -> np.ndarray:
    if array.ndim != len(spec.shape) or any(
        d is not None and d != a for d, a in zip(spec.shape[1:], array.shape[1:], strict=True)
    ):
        shape = ["None" if d is None else str(d) for d in spec.shape]
        raise DataError(
            f"target {target}: calibration input {spec.name!r} has shape {tuple(array.shape)}, "
            f"the model takes ({', '.join(shape)})"
        )
    return array.astype(spec.dtype, copy=False)


# -- conversion and its errors ------------------------------------------------------


def _convert(
    converter: Any, config: TFLiteConvertConfig, target: str, calibration: _Calibration | None
) -> bytes:
    try:
        with _CONVERT_LOCK, _native_stderr_silenced(), warnings.catch_warnings():
            # Calibration runs TF's own deprecated interpreter, which warns on every use.
            warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated")
            flatbuffer = converter.convert()
    except Exception as e:
        if calibration is not None and calibration.error is not None:
            raise calibration.error from e
        ops = _unsupported_ops(e)
        if ops:
            others = f"; also {', '.join(ops[1:])}" if len(ops) > 1 else ""
            raise UnsupportedOpError(ops[0], target, f"not a TFLite builtin{others}") from e
        raise PassError(
            f"target {target}: tflite-convert {config.mode} failed: {_converter_reason(e)}"
        ) from e
    if calibration is not None and calibration.error is not None:
        raise calibration.error
    return bytes(flatbuffer)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded interpreters): nothing to silence
        yield
        return
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


_OP_PATTERNS = (
    re.compile(r"'([A-Za-z_]+\.[A-Za-z0-9_.]+)' op is neither a custom op nor a flex op"),
    re.compile(r"failed to legalize operation '([A-Za-z_]+\.[A-Za-z0-9_.]+)'"),
    re.compile(r"'([A-Za-z_]+\.[A-Za-z0-9_.]+)' op (?:is not supported|not supported)"),
)
_SELECT_OPS = re.compile(r"^(?:TF Select ops|Custom ops): (.+)$", re.MULTILINE)


def _unsupported_ops(error: Exception) -> list[str]:
    """Names of the ops the converter refused, in order of appearance (e.g. ``tf.MatrixInverse``)."""
    found: list[str] = []
    # The converter's structured errors name the operator; the text is the fallback.
    for item in getattr(error, "errors", None) or []:
        name = getattr(getattr(item, "operator", None), "name", "")
        if name:
            found.append(str(name))
    text = str(error)
    for pattern in _OP_PATTERNS:
        found.extend(pattern.findall(text))
    if not found:
        for listed in _SELECT_OPS.findall(text):
            found.extend(f"tf.{op.strip()}" for op in listed.split(",") if op.strip())
    return list(dict.fromkeys(found))


def _converter_reason(error: Exception) -> str:
    """The first real error line of a converter failure, without MLIR locations."""
    text = str(error)
    for line in text.splitlines():
        _, sep, rest = line.partition("error: ")
        if not sep:
            continue
        rest = _strip_location(rest.strip())
        if rest and not rest.startswith("failed while converting"):
            return _one_line(rest)
    return _one_line(text) or type(error).__name__


def _strip_location(text: str) -> str:
    if not text.startswith("loc("):
        return text
    depth = 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return text[i + 1 :].lstrip(": ").strip()
    return text


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# -- what came out --------------------------------------------------------------------


def _interpreter(path: Path) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the converter's own interpreter (deprecated, but present with TF)
        tf = import_tensorflow()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_path=str(path))
    return Interpreter(model_path=str(path))


def _inspect(
    path: Path, inputs: tuple[str, ...], outputs: tuple[str, ...], target: str, integer: bool
) -> dict[str, Any]:
    """The converted model's IO (names, dtypes, quantization) and, for integer modes, the
    ops that still compute in float."""
    with quiet_native_stderr():  # LiteRT announces its XNNPACK delegate on stderr
        interpreter = _interpreter(path)
        if _SERVING_KEY not in interpreter.get_signature_list():
            raise PassError(f"target {target}: the converted model has no signature {_SERVING_KEY!r}")
        runner = interpreter.get_signature_runner(_SERVING_KEY)
    in_details = runner.get_input_details()
    out_details = runner.get_output_details()
    missing = [n for n in inputs if n not in in_details] + [n for n in outputs if n not in out_details]
    if missing:
        raise PassError(
            f"target {target}: the converted model lost tensor {', '.join(missing)} "
            f"(has inputs {sorted(in_details)}, outputs {sorted(out_details)})"
        )
    return {
        "inputs": [_tensor_facts(name, in_details[name]) for name in inputs],
        "outputs": [_tensor_facts(name, out_details[name]) for name in outputs],
        "float_ops": _float_ops(interpreter) if integer else [],
        "weights": _weight_dtypes(interpreter),
    }


def _tensor_facts(name: str, detail: dict[str, Any]) -> dict[str, Any]:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    facts: dict[str, Any] = {
        "name": name,
        "tensor": str(detail.get("name", "")),
        "dtype": np.dtype(detail["dtype"]).name,
        "shape": [None if int(d) < 0 else int(d) for d in detail.get("shape_signature", detail["shape"])],
        "quantization": None,
    }
    if scale:
        facts["quantization"] = {"scale": float(scale), "zero_point": int(zero_point)}
    return facts


def _float_ops(interpreter: Any) -> list[str]:
    """Builtin ops that still compute in float32 (sorted, unique)."""
    ops, tensors = _graph(interpreter)
    found = set()
    for op in ops:
        if op["op_name"] in _CONVERSION_OPS:
            continue
        indices = [i for i in [*op["inputs"], *op["outputs"]] if i >= 0]
        if any(tensors[i]["dtype"] == np.float32 for i in indices if i in tensors):
            found.add(str(op["op_name"]))
    return sorted(found)


def _weight_dtypes(interpreter: Any) -> dict[str, int]:
    """Bytes of constant data (weights, biases) per dtype: what the weights are stored as."""
    ops, tensors = _graph(interpreter)
    produced = {i for op in ops for i in op["outputs"]}
    graph_inputs = {d["index"] for d in interpreter.get_input_details()}
    constants = {i for op in ops for i in op["inputs"] if i >= 0} - produced - graph_inputs
    counts: Counter[str] = Counter()
    for i in constants:
        t = tensors.get(i)
        if t is not None:
            counts[np.dtype(t["dtype"]).name] += int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize
    return dict(sorted(counts.items()))


def _graph(interpreter: Any) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    # ``_get_ops_details`` is the only way the Python interpreter lists ops; treat its
    # absence as "nothing to report" rather than a failed conversion.
    try:
        ops = list(interpreter._get_ops_details())
        tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    except (AttributeError, ValueError):
        return [], {}
    return ops, tensors
