"""Session fixtures: the sample model converted to TFLite for real, and artifacts around it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from runtime_helpers import SAMPLE_DIR, Models, write_artifact


def _convert(keras_path: Path, calibration: np.ndarray, dest: Path) -> Models:
    import keras
    import tensorflow as tf

    model = keras.models.load_model(keras_path)

    fp32 = dest / "fp32.tflite"
    fp32.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())

    def representative() -> object:
        for i in range(len(calibration)):
            yield [calibration[i : i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    int8 = dest / "int8.tflite"
    with warnings.catch_warnings():  # "Statistics for quantized inputs were expected": int8 IO, as asked
        warnings.simplefilter("ignore", UserWarning)
        int8.write_bytes(converter.convert())

    inp = keras.Input(batch_shape=(1, 8, 8, 1), name="image")
    fixed1 = dest / "fixed1.tflite"
    fixed1.write_bytes(tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, model(inp))).convert())

    # Two inputs, renamed on the public side; output = sum(a) + 10 * sum(b), easy to check.
    a = keras.Input(shape=(2,), name="a")
    b = keras.Input(shape=(3,), name="b")
    dense = keras.layers.Dense(1, use_bias=False, name="total")
    total = dense(keras.layers.Concatenate()([a, b]))
    dense.set_weights([np.array([[1.0], [1.0], [10.0], [10.0], [10.0]], np.float32)])
    pair = dest / "pair.tflite"
    pair.write_bytes(tf.lite.TFLiteConverter.from_keras_model(keras.Model([a, b], total)).convert())

    validation = np.load(SAMPLE_DIR / "data" / "validation.npz")
    images = validation["image"].astype(np.float32)
    reference = np.asarray(model(images, training=False), dtype=np.float32)
    return Models(
        fp32=fp32,
        int8=int8,
        fixed1=fixed1,
        pair=pair,
        images=images,
        labels=validation["labels"],
        reference=reference,
    )


@pytest.fixture(scope="session")
def tflite_models(
    tmp_path_factory: pytest.TempPathFactory, keras_model_path: Path, calibration_npz: Path
) -> Models:
    """fp32, int8 (int8 IO) and batch-1 TFLite files converted from the sample's Keras model."""
    calibration = np.load(calibration_npz)["image"].astype(np.float32)
    return _convert(keras_model_path, calibration, tmp_path_factory.mktemp("tflite"))


@pytest.fixture(scope="session")
def fp32_artifact(tmp_path_factory: pytest.TempPathFactory, tflite_models: Models) -> Path:
    """fp32 model, no hooks."""
    return write_artifact(tmp_path_factory.mktemp("fp32") / "artifact", tflite_models.fp32, precision="fp32")


@pytest.fixture(scope="session")
def int8_artifact(tmp_path_factory: pytest.TempPathFactory, tflite_models: Models, sample_dir: Path) -> Path:
    """int8 model with the sample's hooks (postprocess adds ``label``), as the digits build ships."""
    return write_artifact(
        tmp_path_factory.mktemp("int8") / "artifact",
        tflite_models.int8,
        precision="int8",
        hooks=sample_dir / "hooks.py",
    )
