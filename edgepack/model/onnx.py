"""ONNX models, run with ONNX Runtime on the CPU."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import BackendMissingError
from ..runtime.backends.onnxruntime import ORT_DTYPES
from ..runtime.signature import IOSignature, TensorSpec
from .base import Batch, Precision
from .loader import NameMap, model_error

_FLOAT16 = 10  # onnx.TensorProto.FLOAT16


class OnnxModelSource:
    """An ONNX model; names, order and shapes as the graph declares them (symbolic dims -> None)."""

    def __init__(
        self,
        path: Path,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
    ) -> None:
        try:
            import onnx
            import onnxruntime as ort
        except ImportError as e:
            raise BackendMissingError("onnxruntime", "onnx") from e
        path = Path(path)
        if not path.is_file():
            raise model_error(path, "not an ONNX model file")
        try:
            # The session validates the whole graph; a damaged file fails here, not at predict.
            self._session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:
            raise model_error(path, "cannot load the ONNX model", e) from e
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as e:
            raise model_error(path, "cannot read the ONNX model", e) from e
        native = IOSignature(
            inputs=tuple(_spec(path, arg) for arg in self._session.get_inputs()),
            outputs=tuple(_spec(path, arg) for arg in self._session.get_outputs()),
        )
        self._names = NameMap.build(path, native, input_names, output_names)
        opsets = {(entry.domain or "ai.onnx"): int(entry.version) for entry in proto.opset_import}
        producer = " ".join(p for p in (proto.producer_name, proto.producer_version) if p)
        self.artifact = self._names.artifact(
            "onnx",
            precision=_precision(proto),
            details={
                "framework": "onnx",
                "opset": opsets.get("ai.onnx"),
                "opsets": dict(sorted(opsets.items())),
                "ir_version": int(proto.ir_version),
                "producer": producer,
                "onnx_version": onnx.__version__,
                "onnxruntime_version": ort.__version__,
            },
        )

    def predict(self, batch: Batch) -> Batch:
        """Run the model with ONNX Runtime (CPU) on one batch (public names in and out)."""
        feeds = self._names.native_feeds(batch)
        names = list(self._names.native.output_names)
        try:
            arrays = self._session.run(names, feeds)
        except Exception as e:
            raise model_error(self.artifact.path, "ONNX Runtime prediction failed", e) from e
        return self._names.outputs(dict(zip(names, arrays, strict=True)))


def _precision(proto: Any) -> Precision:
    """How the model was quantized, read from its operators and weights (main graph only)."""
    ops = {node.op_type for node in proto.graph.node}
    if ops & {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger"}:
        return "dynamic"
    if ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul"}:
        return "int8"
    if any(t.data_type == _FLOAT16 for t in proto.graph.initializer):
        return "fp16"
    return "fp32"


def _spec(path: Path, arg: Any) -> TensorSpec:
    dtype = ORT_DTYPES.get(arg.type)
    if dtype is None:
        raise model_error(path, f"tensor {arg.name!r} has type {arg.type}, which edgepack cannot feed")
    shape = arg.shape if arg.shape is not None else []
    return TensorSpec(
        name=arg.name, dtype=dtype, shape=tuple(d if isinstance(d, int) else None for d in shape)
    )
