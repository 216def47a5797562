"""The sample and multi-IO models in every source format, built once per session.

SavedModels come from ``keras.Model.export``, ONNX from ``tf2onnx.convert.from_function``
(``from_keras`` is broken with Keras 3), TFLite from ``tf.lite.TFLiteConverter``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgepack.model.base import Batch
from edgepack.model.keras import KerasModelSource
from edgepack.model.loader import load_model
from edgepack.model.tf_env import import_keras, import_tensorflow

ONNX_OPSET = 17


def _load_keras(path: Path) -> Any:
    return import_keras().saving.load_model(path, compile=False)


def _tf_specs(model: Any) -> list[Any]:
    tf = import_tensorflow()
    return [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs]


def _to_onnx(keras_path: Path, dest: Path, output_names: list[str]) -> Path:
    """Convert with tf2onnx from a tf.function returning a dict: its keys name the ONNX outputs."""
    import tf2onnx

    tf = import_tensorflow()
    model = _load_keras(keras_path)
    specs = _tf_specs(model)

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> dict[str, Any]:
        out = model(list(args) if len(args) > 1 else args[0], training=False)
        out = out if isinstance(out, list | tuple) else [out]
        return dict(zip(output_names, out, strict=True))

    tf2onnx.convert.from_function(serve, input_signature=specs, opset=ONNX_OPSET, output_path=str(dest))
    return dest


def _to_tflite(keras_path: Path, dest: Path, configure: Callable[[Any], None] | None = None) -> Path:
    tf = import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(_load_keras(keras_path))
    if configure is not None:
        configure(converter)
    dest.write_bytes(converter.convert())
    return dest


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def digits_batch(validation_npz: Path) -> Batch:
    with np.load(validation_npz) as data:
        return {"image": data["image"][:40].astype(np.float32)}


@pytest.fixture(scope="session")
def multi_io_batch() -> Batch:
    rng = np.random.default_rng(7)
    return {
        "pixels": rng.random((6, 4, 4, 1), dtype=np.float32),
        "meta": rng.standard_normal((6, 3)).astype(np.float32),
    }


@pytest.fixture(scope="session")
def digits_source(keras_model_path: Path) -> KerasModelSource:
    source = load_model(keras_model_path)
    assert isinstance(source, KerasModelSource)
    return source


@pytest.fixture(scope="session")
def multi_io_source(multi_io_keras_path: Path) -> KerasModelSource:
    source = load_model(multi_io_keras_path)
    assert isinstance(source, KerasModelSource)
    return source


@pytest.fixture(scope="session")
def digits_reference(digits_source: KerasModelSource, digits_batch: Batch) -> Batch:
    return digits_source.predict(digits_batch)


@pytest.fixture(scope="session")
def multi_io_reference(multi_io_source: KerasModelSource, multi_io_batch: Batch) -> Batch:
    return multi_io_source.predict(multi_io_batch)


@pytest.fixture(scope="session")
def digits_h5(keras_model_path: Path, model_dir: Path) -> Path:
    dest = model_dir / "digits.h5"
    _load_keras(keras_model_path).save(dest)
    return dest


@pytest.fixture(scope="session")
def digits_savedmodel(keras_model_path: Path, model_dir: Path) -> Path:
    dest = model_dir / "digits_savedmodel"
    _load_keras(keras_model_path).export(str(dest), verbose=False)
    return dest


@pytest.fixture(scope="session")
def multi_io_savedmodel(multi_io_keras_path: Path, model_dir: Path) -> Path:
    dest = model_dir / "multi_io_savedmodel"
    _load_keras(multi_io_keras_path).export(str(dest), verbose=False)
    return dest


@pytest.fixture(scope="session")
def digits_onnx(keras_model_path: Path, model_dir: Path) -> Path:
    return _to_onnx(keras_model_path, model_dir / "digits.onnx", ["probabilities"])


@pytest.fixture(scope="session")
def multi_io_onnx(multi_io_keras_path: Path, model_dir: Path) -> Path:
    return _to_onnx(multi_io_keras_path, model_dir / "multi_io.onnx", ["class_probs", "score"])


@pytest.fixture(scope="session")
def digits_tflite(keras_model_path: Path, model_dir: Path) -> Path:
    return _to_tflite(keras_model_path, model_dir / "digits.tflite")


@pytest.fixture(scope="session")
def multi_io_tflite(multi_io_keras_path: Path, model_dir: Path) -> Path:
    return _to_tflite(multi_io_keras_path, model_dir / "multi_io.tflite")


@pytest.fixture(scope="session")
def digits_tflite_int8(keras_model_path: Path, model_dir: Path, calibration_npz: Path) -> Path:
    """Full-integer model with int8 input and output tensors."""
    tf = import_tensorflow()
    with np.load(calibration_npz) as data:
        images = data["image"][:100].astype(np.float32)

    def representative() -> Any:
        for i in range(len(images)):
            yield [images[i : i + 1]]

    def int8(converter: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8

    with warnings.catch_warnings():
        # "Statistics for quantized inputs were expected": the converter's own, about int8 IO.
        warnings.simplefilter("ignore", UserWarning)
        return _to_tflite(keras_model_path, model_dir / "digits_int8.tflite", int8)


@pytest.fixture(scope="session")
def digits_tflite_batch1(keras_model_path: Path, model_dir: Path) -> Path:
    """A model converted with a fixed batch of one (no dynamic axis)."""
    keras = import_keras()
    tf = import_tensorflow()
    model = _load_keras(keras_model_path)
    image = keras.Input(batch_shape=(1, 8, 8, 1), name="image")
    fixed = keras.Model(image, model(image))
    dest = model_dir / "digits_batch1.tflite"
    dest.write_bytes(tf.lite.TFLiteConverter.from_keras_model(fixed).convert())
    return dest
