"""OpenVINO passes: ``openvino-convert`` (IR xml/bin) and ``openvino-quantize`` (NNCF int8).

openvino and nncf are imported inside the functions that use them. The NNCF arguments
are built in one translator (``to_nncf_kwargs``), after optimum-intel's ``to_nncf_dict``.
"""

from __future__ import annotations

import re
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
    """Keras / SavedModel / ONNX -> OpenVINO IR (``model.xml`` + ``model.bin``)."""

    name: ClassVar[str] = "openvino-convert"
    config_model: ClassVar[type[PassConfig]] = OpenVinoConvertConfig
    accepts: ClassVar[frozenset[ModelFormat]] = frozenset({"keras", "savedmodel", "onnx"})
    produces: ClassVar[ModelFormat] = "openvino"

    def run(self, model: ModelArtifact, config: PassConfig, ctx: PassContext) -> ModelArtifact:
        assert isinstance(config, OpenVinoConvertConfig)
        if model.format not in self.accepts:
            raise PassError(f"openvino-convert cannot take a {model.format} model", where=ctx.target)
        ov = _import_openvino()
        started = time.perf_counter()
        ctx.progress(f"converting {model.path.name} to OpenVINO IR")
        # Keras and SavedModel go through the same traced tf.function as tf2onnx does, so
        # both converters see public names and signature order; ONNX is read directly.
        source: Any = str(model.path) if model.format == "onnx" else tf_function_for(model)[0]
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

    def run(self, model: ModelArtifact, config: PassConfig, ctx: PassContext) -> ModelArtifact:
        assert isinstance(config, OpenVinoQuantizeConfig)
        if model.format != "openvino":
            raise PassError(f"openvino-quantize takes an OpenVINO IR, got {model.format}", where=ctx.target)
        if ctx.calibration is None:
            raise DataError(
                f"target {ctx.target}: openvino-quantize needs calibration data "
                "(set calibration: in edgepack.yaml)"
            )
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
        try:
            kwargs = to_nncf_kwargs(config)
            kwargs["subset_size"] = len(items)  # what there is (NNCF warns when asked for more)
            quantized = nncf.quantize(ov_model, nncf.Dataset(items, transform), **kwargs)
        except (DataError, PassError):
            raise
        except Exception as e:
            raise converter_error(e, op_from_openvino_error(str(e)), ctx.target, "NNCF quantization") from e
        out = ctx.work_dir / IR_FILE
        # int8 weights are stored as int8 either way; keep the rest (scales, biases) exact.
        ov.save_model(quantized, str(out), compress_to_fp16=False)
        return ModelArtifact(
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
