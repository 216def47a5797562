"""ONNX sources (from tf2onnx): graph names, symbolic batch axis, opset, predict with ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgepack.model.base import Batch
from edgepack.model.loader import load_model
from edgepack.model.onnx import OnnxModelSource
from edgepack.runtime.signature import TensorSpec

from .conftest import ONNX_OPSET


def test_digits_signature_and_details(digits_onnx: Path) -> None:
    source = load_model(digits_onnx)
    assert isinstance(source, OnnxModelSource)
    artifact = source.artifact
    assert artifact.format == "onnx"
    assert artifact.signature.inputs == (TensorSpec("image", "float32", (None, 8, 8, 1)),)
    assert artifact.signature.outputs == (TensorSpec("probabilities", "float32", (None, 10)),)
    assert artifact.native_inputs == ()
    assert artifact.details["opset"] == ONNX_OPSET
    assert artifact.details["opsets"]["ai.onnx"] == ONNX_OPSET
    assert artifact.details["producer"].startswith("tf2onnx")
    assert artifact.details["onnxruntime_version"]


def test_predict_matches_keras(digits_onnx: Path, digits_batch: Batch, digits_reference: Batch) -> None:
    source = load_model(digits_onnx)
    out = source.predict(digits_batch)
    assert list(out) == ["probabilities"]
    assert out["probabilities"].dtype == np.float32
    np.testing.assert_allclose(out["probabilities"], digits_reference["probabilities"], atol=1e-5)
    one = source.predict({"image": digits_batch["image"][:1].astype(np.float64)})
    np.testing.assert_allclose(one["probabilities"], digits_reference["probabilities"][:1], atol=1e-5)


def test_multi_io_order_and_values(
    multi_io_onnx: Path, multi_io_batch: Batch, multi_io_reference: Batch
) -> None:
    source = load_model(multi_io_onnx)
    sig = source.artifact.signature
    assert sig.input_names == ("pixels", "meta")
    assert sig.output_names == ("class_probs", "score")
    assert [t.shape for t in sig.inputs] == [(None, 4, 4, 1), (None, 3)]
    assert [t.shape for t in sig.outputs] == [(None, 5), (None, 1)]
    out = source.predict(multi_io_batch)
    assert list(out) == ["class_probs", "score"]
    for name in ("class_probs", "score"):
        np.testing.assert_allclose(out[name], multi_io_reference[name], atol=1e-5)


def test_renames(multi_io_onnx: Path, multi_io_batch: Batch, multi_io_reference: Batch) -> None:
    source = load_model(multi_io_onnx, input_names=["a", "b"], output_names=["c", "d"])
    assert source.artifact.native_inputs == ("pixels", "meta")
    assert source.artifact.native_outputs == ("class_probs", "score")
    out = source.predict({"b": multi_io_batch["meta"], "a": multi_io_batch["pixels"]})
    assert list(out) == ["c", "d"]
    np.testing.assert_allclose(out["d"], multi_io_reference["score"], atol=1e-5)


def test_precision_is_read_from_the_graph(
    digits_onnx: Path, tmp_path: Path, digits_batch: Batch, digits_reference: Batch
) -> None:
    import onnx
    from onnxconverter_common import float16
    from onnxruntime.quantization import QuantType, quantize_dynamic

    assert load_model(digits_onnx).artifact.precision == "fp32"
    fp16 = tmp_path / "fp16.onnx"
    onnx.save(float16.convert_float_to_float16(onnx.load(str(digits_onnx)), keep_io_types=True), str(fp16))
    source = load_model(fp16)
    assert source.artifact.precision == "fp16"
    assert source.artifact.signature.inputs[0].dtype == "float32"  # IO kept float32
    out = source.predict(digits_batch)["probabilities"]
    np.testing.assert_allclose(out, digits_reference["probabilities"], atol=1e-2)
    dynamic = tmp_path / "dynamic.onnx"
    quantize_dynamic(str(digits_onnx), str(dynamic), weight_type=QuantType.QInt8)
    assert load_model(dynamic).artifact.precision == "dynamic"
