"""OpenVINO passes: ``openvino-convert`` (IR xml/bin) and ``openvino-quantize`` (NNCF int8).

openvino and nncf are imported inside the functions that use them. The NNCF arguments
are built in one translator (``to_nncf_kwargs``), after optimum-intel's ``to_nncf_dict``.

NNCF logs INFO lines and draws progress bars on stdout, which would corrupt machine-readable
output (``edgepack build --json``): every NNCF call runs inside ``quiet_nncf``, which sends
that chatter to stderr and keeps only NNCF's warnings.

``accuracy_control`` (see ``openvino_mixed``): when the int8 IR fails the fidelity gate, NNCF's
accuracy-controlled quantization reverts the layers that cost agreement to float.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from ..errors import BackendMissingError, DataError, ModelError, PassError
from ..model.base import Batch, ModelArtifact, ModelFormat
from .base import Pass, PassConfig, PassContext
from .converter_errors import converter_error
from .tf_trace import tf_function_for

IR_FILE = "model.xml"


def _import_openvino() -> Any:
    try:
        import openvino as ov
    except ImportError as e:
        raise BackendMissingError("openvino", "openvino") from e
    return ov


# OpenVINO's frontends end a failed conversion with a summary naming the operations:
#   "-- No conversion rule found for operations: com.example.FancyWarp, ..."
#   "-- Conversion is failed for: MatrixSquareRoot"
_OV_OP_RE = re.compile(
    r"(?:No conversion rule found for operations|Conversion (?:is )?failed for(?: operations)?)\s*:\s*"
    r"([^\s,]+)"
)


def op_from_openvino_error(message: str) -> str | None:
    """The first operation an OpenVINO conversion error names, if any."""
    m = _OV_OP_RE.search(message)
    return m.group(1) if m else None


# Redirecting fd 1 is process-wide: NNCF runs take turns.
_QUIET_LOCK = threading.Lock()


@contextlib.contextmanager
def quiet_nncf() -> Iterator[None]:
    """Run NNCF with nothing on stdout: its logger at WARNING and writing to stderr, Python's
    stdout (rich progress bars, prints) and fd 1 (native code) sent to stderr; all restored after."""
    nncf_logger = logging.getLogger("nncf")
    saved_level = nncf_logger.level
    moved: list[tuple[logging.StreamHandler[Any], Any, int]] = []
    with _QUIET_LOCK:
        for handler in nncf_logger.handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                moved.append((handler, handler.stream, handler.level))
        try:
            nncf_logger.setLevel(logging.WARNING)
            for handler, _, _ in moved:
                handler.setLevel(logging.WARNING)
                handler.setStream(sys.stderr)
            with contextlib.redirect_stdout(sys.stderr), _stdout_fd_to_stderr():
                yield
        finally:
            nncf_logger.setLevel(saved_level)
            for handler, stream, level in moved:
                handler.setStream(stream)
                handler.setLevel(level)


@contextlib.contextmanager
def _stdout_fd_to_stderr() -> Iterator[None]:
    for stream in (sys.stdout, sys.__stdout__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 (embedded interpreters): nothing to redirect
        yield
        return
    try:
        os.dup2(2, 1)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 1)
    finally:
        os.close(saved)


def _set_public_names(ov_model: Any, model: ModelArtifact) -> None:
    """Give the IR's tensors the public names, in signature order (tools name them at will)."""
    sig = model.signature
    if len(ov_model.inputs) != len(sig.inputs) or len(ov_model.outputs) != len(sig.outputs):
        raise PassError(
            f"converted IR has {len(ov_model.inputs)} inputs / {len(ov_model.outputs)} outputs, "
            f"the model's signature {len(sig.inputs)} / {len(sig.outputs)}"
        )
    native_in = model.native_inputs or sig.input_names
    # Converters keep input names but may reorder inputs: find each by its native name.
    by_name: dict[str, Any] = {}
    for port in ov_model.inputs:
        for name in port.get_names():
            by_name[name] = port
    for i, (public, native) in enumerate(zip(sig.input_names, native_in, strict=True)):
        port = by_name.get(native) or by_name.get(public) or ov_model.inputs[i]
        port.get_tensor().set_names({public})
    for port, public in zip(ov_model.outputs, sig.output_names, strict=True):
        port.get_tensor().set_names({public})


def _ordered_like_signature(ov_model: Any, model: ModelArtifact) -> bool:
    names = [p.get_any_name() for p in ov_model.inputs]
    return names == list(model.signature.input_names)


# -- openvino-convert ---------------------------------------------------------------


class OpenVinoConvertConfig(PassConfig):
    compress_to_fp16: bool = Field(
        default=False,
        description="store weights as float16 (half the size; compute precision is the runtime's choice)",
    )


class OpenVinoConvert(Pass):
    """Keras / SavedModel / ONNX / TFLite -> OpenVINO IR (``model.xml`` + ``model.bin``)."""

    name: ClassVar[str] = "openvino-convert"
    config_model: ClassVar[type[PassConfig]] = OpenVinoConvertConfig
    accepts: ClassVar[frozenset[ModelFormat]] = frozenset({"keras", "savedmodel", "onnx", "tflite"})
    produces: ClassVar[ModelFormat] = "openvino"

    def run(self, model: ModelArtifact, config: PassConfig, ctx: PassContext) -> ModelArtifact:
        assert isinstance(config, OpenVinoConvertConfig)
        if model.format not in self.accepts:
            raise PassError(f"openvino-convert cannot take a {model.format} model", where=ctx.target)
        ov = _import_openvino()
        started = time.perf_counter()
        ctx.progress(f"converting {model.path.name} to OpenVINO IR")
        # Keras and SavedModel go through the same traced tf.function as tf2onnx does, so
        # both converters see public names and signature order; ONNX and TFLite files are read
        # directly by OpenVINO's own frontends.
        direct = model.format in ("onnx", "tflite")
        source: Any = str(model.path) if direct else tf_function_for(model)[0]
        try:
            ov_model = ov.convert_model(source)
        except (ModelError, PassError):
            raise
        except Exception as e:
            op = op_from_openvino_error(str(e))
            raise converter_error(
                e, op, ctx.target, "OpenVINO model conversion", failed="OpenVINO conversion"
            ) from e
        _set_public_names(ov_model, model)
        if not _ordered_like_signature(ov_model, model):
            raise PassError("OpenVINO reordered the model inputs", where=ctx.target)
        out = ctx.work_dir / IR_FILE
        # save_model compresses to fp16 unless told otherwise: always say which.
        ov.save_model(ov_model, str(out), compress_to_fp16=config.compress_to_fp16)
        return ModelArtifact(
            path=out,
            format="openvino",
            signature=model.signature,
            precision="fp16" if config.compress_to_fp16 else "fp32",
            details={
                "converter": f"openvino {ov.get_version()}",
                "source_format": model.format,
                "compress_to_fp16": config.compress_to_fp16,
                "conversion_seconds": round(time.perf_counter() - started, 3),
            },
        )


# -- openvino-quantize --------------------------------------------------------------


class OpenVinoQuantizeConfig(PassConfig):
    preset: Literal["performance", "mixed"] = Field(
        default="performance",
        description="performance: symmetric weights and activations; mixed: asymmetric activations",
    )
    subset_size: int = Field(default=300, gt=0, description="calibration samples NNCF uses at most")
    fast_bias_correction: bool = Field(
        default=True, description="fast bias correction (False: slower, sometimes more accurate)"
    )
    model_type: Literal["transformer"] | None = Field(
        default=None, description="'transformer' applies NNCF's transformer-specific scheme"
    )
    target_device: Literal["ANY", "CPU", "GPU", "NPU"] = Field(
        default="ANY", description="hardware the quantization scheme is tuned for"
    )
    accuracy_control: bool = Field(
        default=False,
        description="when the int8 IR fails the fidelity gate, let NNCF's accuracy control revert "
        "the layers that cost agreement on the validation data to float (needs validation data)",
    )
    max_drop: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="accuracy_control: the largest drop in top-1 agreement with the fp32 IR "
        "(absolute) NNCF may accept; the project's fidelity gate still has the last word",
    )
    max_iterations: int = Field(
        default=8,
        ge=0,
        description="accuracy_control: NNCF reverts one group of operations (a layer and those "
        "sharing its quantizers) per iteration, at most this many; 0 = never revert",
    )


def to_nncf_kwargs(config: OpenVinoQuantizeConfig) -> dict[str, Any]:
    """The one place an ``openvino-quantize`` config becomes ``nncf.quantize`` kwargs."""
    import nncf

    kwargs: dict[str, Any] = {
        "preset": nncf.QuantizationPreset[config.preset.upper()],
        "subset_size": config.subset_size,
        "fast_bias_correction": config.fast_bias_correction,
        "target_device": nncf.TargetDevice[config.target_device],
    }
    if config.model_type is not None:
        kwargs["model_type"] = nncf.ModelType[config.model_type.upper()]
    return kwargs


def calibration_samples(
    batches: Callable[[], Iterator[Batch]], public_inputs: tuple[str, ...], dtypes: dict[str, Any], limit: int
) -> list[dict[str, np.ndarray]]:
    """Up to ``limit`` items of one sample each (batch of 1), keyed by public input names.

    NNCF counts ``subset_size`` in dataset items and warns that batches larger than one
    can skew statistics, so samples are split out; no more than it will use are kept.
    """
    items: list[dict[str, np.ndarray]] = []
    for batch in batches():
        if len(items) >= limit:
            break
        missing = [n for n in public_inputs if n not in batch]
        if missing:
            raise DataError(f"calibration batch lacks input {missing[0]!r}")
        for i in range(min(len(batch[public_inputs[0]]), limit - len(items))):
            items.append(
                {n: np.asarray(batch[n][i : i + 1], dtype=dtypes.get(n, np.float32)) for n in public_inputs}
            )
    return items


class OpenVinoQuantize(Pass):
    """NNCF post-training int8 quantization of an OpenVINO IR."""

    name: ClassVar[str] = "openvino-quantize"
    config_model: ClassVar[type[PassConfig]] = OpenVinoQuantizeConfig
    accepts: ClassVar[frozenset[ModelFormat]] = frozenset({"openvino"})
    produces: ClassVar[ModelFormat] = "openvino"
    needs_calibration: ClassVar[bool] = True

    def requires_validation(self, config: PassConfig) -> bool:
        assert isinstance(config, OpenVinoQuantizeConfig)
        return config.accuracy_control

    def run(self, model: ModelArtifact, config: PassConfig, ctx: PassContext) -> ModelArtifact:
        assert isinstance(config, OpenVinoQuantizeConfig)
        if model.format != "openvino":
            raise PassError(f"openvino-quantize takes an OpenVINO IR, got {model.format}", where=ctx.target)
        if ctx.calibration is None:
            raise DataError(
                f"target {ctx.target}: openvino-quantize needs calibration data "
                "(set calibration: in edgepack.yaml)"
            )
        if config.accuracy_control:
            from .accuracy_control import check_gate_inputs

            check_gate_inputs(ctx)
        ov = _import_openvino()
        try:
            import nncf
        except ImportError as e:
            raise BackendMissingError("nncf", "openvino") from e

        started = time.perf_counter()
        ov_model = ov.Core().read_model(str(model.path))
        # openvino-convert names the IR's tensors with the public names; an IR from
        # elsewhere may not, so map by position.
        native_in = [p.get_any_name() for p in ov_model.inputs]
        public_in = model.signature.input_names
        dtypes = {
            n: p.get_element_type().to_dtype() for n, p in zip(public_in, ov_model.inputs, strict=False)
        }
        items = calibration_samples(ctx.calibration, public_in, dtypes, config.subset_size)
        if not items:
            raise DataError(f"target {ctx.target}: calibration data is empty")

        def transform(item: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {native: item[public] for public, native in zip(public_in, native_in, strict=True)}

        ctx.progress(f"quantizing {model.path.name} with NNCF ({len(items)} calibration samples)")
        kwargs = to_nncf_kwargs(config)
        kwargs["subset_size"] = len(items)  # what there is (NNCF warns when asked for more)
        try:
            with quiet_nncf():
                quantized = nncf.quantize(ov_model, nncf.Dataset(items, transform), **kwargs)
        except (DataError, PassError):
            raise
        except Exception as e:
            raise converter_error(e, op_from_openvino_error(str(e)), ctx.target, "NNCF quantization") from e
        out = ctx.work_dir / IR_FILE
        # int8 weights are stored as int8 either way; keep the rest (scales, biases) exact.
        ov.save_model(quantized, str(out), compress_to_fp16=False)
        result = ModelArtifact(
            path=out,
            format="openvino",
            signature=model.signature,
            precision="int8",
            native_inputs=model.native_inputs,
            native_outputs=model.native_outputs,
            details={
                **{k: v for k, v in model.details.items() if k in ("converter", "source_format")},
                "quantization": {
                    "tool": f"nncf {nncf.__version__}",
                    "preset": config.preset,
                    "subset_size": len(items),
                    "fast_bias_correction": config.fast_bias_correction,
                    "model_type": config.model_type,
                    "target_device": config.target_device,
                },
                "size_bytes_before": sum(p.stat().st_size for p in model.files()),
                "quantization_seconds": round(time.perf_counter() - started, 3),
            },
        )
        if not config.accuracy_control:
            return result
        return _with_accuracy_control(
            result, quantized, model, config, ctx, nncf.Dataset(items, transform), transform, kwargs
        )


def _with_accuracy_control(
    full: ModelArtifact,
    full_model: Any,
    source: ModelArtifact,
    config: OpenVinoQuantizeConfig,
    ctx: PassContext,
    calibration: Any,
    transform: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    kwargs: dict[str, Any],
) -> ModelArtifact:
    """``full`` if it passes the gate; else NNCF's accuracy-controlled int8 if that passes;
    else a one-line ``PassError`` with the agreement each reached."""
    import nncf

    from . import openvino_mixed as mixed
    from .accuracy_control import artifact_at, check_gate_inputs, gate_record, gate_summary, with_quantization

    ov = _import_openvino()
    validation, gate = check_gate_inputs(ctx)
    started = time.perf_counter()
    ctx.progress("checking the int8 IR against the fidelity gate")
    full_summary = gate_summary(gate(full))
    record: dict[str, Any] = {
        "accuracy_control": True,
        "max_drop": config.max_drop,
        "max_iterations": config.max_iterations,
        "metric": "top-1 agreement with the fp32 IR per validation sample "
        "(cosine for non-class outputs), in f32",
        "full_int8": gate_record(full_summary),
        "fake_quantize": {"full_int8": mixed.fake_quantize_count(full_model)},
    }
    if full_summary["passed"]:
        record.update(float_layers=[], result=record["full_int8"])
        return with_quantization(full, record)
    if config.max_iterations == 0:
        raise mixed.too_inaccurate(ctx.target, "int8 (max_iterations 0)", full_summary, None)

    ov_model = ov.Core().read_model(str(source.path))
    public_in = source.signature.input_names
    dtypes = {n: p.get_element_type().to_dtype() for n, p in zip(public_in, ov_model.inputs, strict=False)}
    samples = mixed.validation_samples(validation(), public_in, dtypes)
    ctx.progress(f"NNCF accuracy control on {len(samples)} validation samples (max drop {config.max_drop})")
    try:
        with quiet_nncf():
            controlled = mixed.quantize_with_accuracy_control(
                nncf,
                ov,
                ov_model,
                calibration,
                samples,
                transform,
                kwargs,
                config.max_drop,
                config.max_iterations,
            )
    except (DataError, PassError):
        raise
    except Exception as e:
        raise converter_error(
            e, op_from_openvino_error(str(e)), ctx.target, "NNCF accuracy-controlled quantization"
        ) from e
    layers = mixed.float_layers(full_model, controlled)
    if not mixed.quantized_ops(controlled):
        raise PassError(
            f"target {ctx.target}: NNCF accuracy control reverted every quantized layer to float "
            f"({len(layers)}), so no int8 is left (full int8: {full_summary['text']})"
        )
    staged = ctx.work_dir / "accuracy-control"
    staged.mkdir(exist_ok=True)
    ov.save_model(controlled, str(staged / IR_FILE), compress_to_fp16=False)
    candidate = artifact_at(full, staged / IR_FILE)
    summary = gate_summary(gate(candidate))
    if not summary["passed"]:
        raise mixed.too_inaccurate(
            ctx.target, f"int8 with {len(layers)} layer(s) NNCF reverted to float", summary, full_summary
        )
    for f in candidate.files():
        os.replace(f, full.path.with_suffix(f.suffix))
    staged.rmdir()
    record.update(
        float_layers=layers,
        result=gate_record(summary),
        accuracy_control_seconds=round(time.perf_counter() - started, 3),
    )
    record["fake_quantize"]["result"] = mixed.fake_quantize_count(controlled)
    return with_quantization(full, record)
