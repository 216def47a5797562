"""TFLite pass-through sources run with LiteRT: names, order, dynamic batch, quantized IO."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgepack.model.base import Batch
from edgepack.model.loader import load_model
from edgepack.model.tflite import TFLiteModelSource
from edgepack.runtime.signature import TensorSpec


def test_digits_signature_uses_signature_keys_publicly(digits_tflite: Path) -> None:
    source = load_model(digits_tflite)
    assert isinstance(source, TFLiteModelSource)
    artifact = source.artifact
    assert artifact.format == "tflite"
    assert artifact.precision == "fp32"
    assert artifact.signature.inputs == (TensorSpec("image", "float32", (None, 8, 8, 1)),)
    assert artifact.signature.outputs == (TensorSpec("output_0", "float32", (None, 10)),)
    # The file's own names are the signature keys (as the runtime's LiteRT backend names them).
    assert artifact.native_inputs == ()
    assert artifact.native_outputs == ()
    assert artifact.details["signature"] == "serving_default"
    assert artifact.details["quantized_io"] == {}


def test_predict_matches_keras_at_any_batch_size(
    digits_tflite: Path, digits_batch: Batch, digits_reference: Batch
) -> None:
    source = load_model(digits_tflite)
    for n in (40, 1, 13):
        out = source.predict({"image": digits_batch["image"][:n]})
        assert out["output_0"].shape == (n, 10)
        assert out["output_0"].dtype == np.float32
        np.testing.assert_allclose(out["output_0"], digits_reference["probabilities"][:n], atol=1e-5)


def test_multi_io_keeps_model_order_not_alphabetical(
    multi_io_tflite: Path, multi_io_batch: Batch, multi_io_reference: Batch
) -> None:
    # The converter lists signature inputs alphabetically (meta, pixels) and may list the
    # output tensors in any order; the source keeps the model's order for both.
    source = load_model(multi_io_tflite)
    sig = source.artifact.signature
    assert sig.input_names == ("pixels", "meta")
    assert [t.shape for t in sig.inputs] == [(None, 4, 4, 1), (None, 3)]
    assert sig.output_names == ("output_0", "output_1")
    assert [t.shape for t in sig.outputs] == [(None, 5), (None, 1)]
    assert source.artifact.native_inputs == ()
    out = source.predict(multi_io_batch)
    np.testing.assert_allclose(out["output_0"], multi_io_reference["class_probs"], atol=1e-5)
    np.testing.assert_allclose(out["output_1"], multi_io_reference["score"], atol=1e-5)


def test_renames(multi_io_tflite: Path, multi_io_batch: Batch, multi_io_reference: Batch) -> None:
    source = load_model(multi_io_tflite, output_names=["class_probs", "score"])
    assert source.artifact.signature.output_names == ("class_probs", "score")
    assert source.artifact.signature.input_names == ("pixels", "meta")
    assert source.artifact.native_outputs == ("output_0", "output_1")
    assert source.artifact.native_inputs == ()
    out = source.predict(multi_io_batch)
    np.testing.assert_allclose(out["score"], multi_io_reference["score"], atol=1e-5)


def test_int8_io_is_float_in_float_out(
    digits_tflite_int8: Path, digits_batch: Batch, digits_reference: Batch
) -> None:
    source = load_model(digits_tflite_int8)
    artifact = source.artifact
    assert artifact.precision == "int8"
    assert artifact.signature.inputs == (TensorSpec("image", "float32", (None, 8, 8, 1)),)
    assert artifact.signature.outputs[0].dtype == "float32"
    quantized = artifact.details["quantized_io"]
    assert quantized["image"]["dtype"] == "int8"
    assert quantized["image"]["scale"] > 0
    assert quantized["output_0"]["dtype"] == "int8"
    out = source.predict(digits_batch)["output_0"]
    assert out.dtype == np.float32
    reference = digits_reference["probabilities"]
    assert np.abs(out - reference).max() < 0.1
    assert (out.argmax(axis=1) == reference.argmax(axis=1)).mean() >= 0.95


def test_fixed_batch_of_one_runs_sample_by_sample(
    digits_tflite_batch1: Path, digits_batch: Batch, digits_reference: Batch
) -> None:
    source = load_model(digits_tflite_batch1)
    assert source.artifact.signature.inputs[0].shape == (1, 8, 8, 1)
    out = source.predict({"image": digits_batch["image"][:5]})
    (name,) = source.artifact.signature.output_names
    np.testing.assert_allclose(out[name], digits_reference["probabilities"][:5], atol=1e-5)


def test_native_names_are_the_ones_the_runtime_backend_reports(
    multi_io_tflite: Path, multi_io_batch: Batch
) -> None:
    # The Predictor maps public -> native names and feeds the backend: they must agree.
    from edgepack.runtime.backends import load_backend

    artifact = load_model(multi_io_tflite, input_names=["a", "b"]).artifact
    backend = load_backend("litert", multi_io_tflite, {})
    assert set(artifact.native_inputs) == set(backend.signature.input_names)
    assert set(artifact.native_outputs or artifact.signature.output_names) == set(
        backend.signature.output_names
    )
    feeds = dict(zip(artifact.native_inputs, (multi_io_batch["pixels"], multi_io_batch["meta"]), strict=True))
    ours = load_model(multi_io_tflite).predict(multi_io_batch)
    theirs = backend.run(feeds)
    for name in ("output_0", "output_1"):
        np.testing.assert_allclose(theirs[name], ours[name], atol=1e-6)


@pytest.mark.parametrize("mode", ["fp16", "dynamic"])
def test_precision_is_read_from_the_tensors(
    keras_model_path: Path, tmp_path: Path, mode: str, digits_batch: Batch, digits_reference: Batch
) -> None:
    from edgepack.model.tf_env import import_keras, import_tensorflow

    tf = import_tensorflow()
    model = import_keras().saving.load_model(keras_model_path, compile=False)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    path = tmp_path / f"{mode}.tflite"
    path.write_bytes(converter.convert())
    source = load_model(path)
    assert source.artifact.precision == mode
    assert source.artifact.signature.inputs[0].dtype == "float32"
    out = source.predict(digits_batch)["output_0"]
    assert np.abs(out - digits_reference["probabilities"]).max() < 0.05
