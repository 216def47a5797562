"""What a model file really holds: count its quantized and float compute ops.

A pass says what it asked for (``int8``); the manifest records what the file holds. NNCF
may find nothing to quantize, a converter may leave ops in float, a mixed-precision pass
keeps some layers in float on purpose: counting the ops tells them apart.

``measure_precision`` returns ``{"precision", "quantized_ops", "float_ops", "ops"}``, where
precision is ``int8``/``int16x8``/``dynamic`` when any compute op runs on integers, else
``fp16`` when the weights are stored as float16, else ``fp32``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

# Ops that only move data (quantize, dequantize, cast, reshape...) are not compute.
_ONNX_DATA_OPS = frozenset(
    {
        "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "Cast", "Reshape", "Transpose",
        "Squeeze", "Unsqueeze", "Flatten", "Identity", "Shape", "Gather", "Concat", "Slice", "Constant",
    }
)  # fmt: skip
_TFLITE_DATA_OPS = frozenset({"QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CAST"})
_OV_DATA_OPS = frozenset(
    {"Parameter", "Result", "Const", "Convert", "Reshape", "Transpose", "Squeeze", "Unsqueeze",
     "ShapeOf", "Concat", "Gather", "FakeQuantize", "Subtract", "Multiply"}
)  # fmt: skip


def measure_precision(path: Path, fmt: str) -> dict[str, Any]:
    if fmt == "onnx":
        return _onnx(path)
    if fmt == "openvino":
        return _openvino(path)
    if fmt == "tflite":
        return _tflite(path)
    raise ValueError(f"cannot measure the precision of a {fmt} model")


def _result(precision: str, quantized: int, floating: int) -> dict[str, Any]:
    return {
        "precision": precision,
        "quantized_ops": quantized,
        "float_ops": floating,
        "ops": quantized + floating,
    }


def _onnx(path: Path) -> dict[str, Any]:
    import onnx

    graph = onnx.load(str(path)).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    ops = Counter[str]()
    quantized = floating = 0
    dynamic = False
    for node in graph.node:
        ops[node.op_type] += 1
        if node.op_type == "DynamicQuantizeLinear":
            dynamic = True
        if node.op_type in _ONNX_DATA_OPS:
            continue
        integer_kernel = node.op_type.startswith("QLinear") or node.op_type.endswith("Integer")
        if integer_kernel or any(i in dequantized for i in node.input):
            quantized += 1
        else:
            floating += 1
    if quantized:
        return _result("dynamic" if dynamic else "int8", quantized, floating)
    fp16 = sum(1 for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT16)
    fp32 = sum(1 for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
    return _result("fp16" if fp16 > fp32 else "fp32", 0, floating)


def _openvino(path: Path) -> dict[str, Any]:
    root = ET.parse(path).getroot()
    layers = root.iter("layer")
    quantized = floating = 0
    const_types: Counter[str] = Counter()
    fake_quantized_inputs: set[str] = set()
    edges_to: dict[str, list[str]] = {}
    for edge in root.iter("edge"):
        edges_to.setdefault(edge.get("to-layer", ""), []).append(edge.get("from-layer", ""))
    kinds = {}
    for layer in layers:
        kinds[layer.get("id", "")] = layer.get("type", "")
        if layer.get("type") == "Const":
            data = layer.find("data")
            if data is not None:
                const_types[data.get("element_type", "")] += 1
    for layer_id, kind in kinds.items():
        if kind == "FakeQuantize":
            fake_quantized_inputs.add(layer_id)
    for layer_id, kind in kinds.items():
        if kind in _OV_DATA_OPS:
            continue
        sources = edges_to.get(layer_id, [])
        if any(s in fake_quantized_inputs for s in sources):
            quantized += 1
        else:
            floating += 1
    if quantized:
        return _result("int8", quantized, floating)
    fp16 = const_types.get("f16", 0)
    return _result("fp16" if fp16 > const_types.get("f32", 0) else "fp32", 0, floating)


def _tflite(path: Path) -> dict[str, Any]:
    import numpy as np

    from ..runtime.backends.litert import _import_interpreter

    interpreter = _import_interpreter()[0](model_path=str(path))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    quantized = floating = 0
    int16 = fp16_weights = False
    for op in interpreter._get_ops_details():
        if op["op_name"] in _TFLITE_DATA_OPS:
            if op["op_name"] == "DEQUANTIZE" and any(
                tensors[i]["dtype"] == np.float16 for i in op["inputs"] if i in tensors
            ):
                fp16_weights = True
            continue
        dtypes = {tensors[i]["dtype"] for i in [*op["inputs"], *op["outputs"]] if i >= 0 and i in tensors}
        if np.int16 in dtypes:
            int16 = True
        if dtypes & {np.int8, np.uint8, np.int16} and np.float32 not in dtypes:
            quantized += 1
        else:
            floating += 1
    if quantized:
        return _result("int16x8" if int16 else "int8", quantized, floating)
    return _result("fp16" if fp16_weights else "fp32", 0, floating)
