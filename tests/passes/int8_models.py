"""Models and a real fidelity gate for the ONNX int8 tests (helpers, not fixtures).

``build_outlier_model``: ``mixed_models``'s outlier MLP with a head of 3 classes,
``features (16) -> hidden (32, relu) -> outlier (32) -> head (3) -> scores (softmax)``: full
int8 fails any gate on it. ``gate_for``: ``mixed_models``'s gate with ONNX Runtime on the CPU.

``build_digits_cnn``: a small Keras CNN (Conv2D, BatchNorm, DepthwiseConv2D, Dense) trained a
few epochs on scikit-learn's 8x8 digits, deterministic (fixed seeds, deterministic ops).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import mixed_models
import numpy as np
from passes_helpers import pass_runner

from edgepack.config import Thresholds
from edgepack.fidelity import FidelityReport
from edgepack.model.base import Batch, ModelArtifact, ModelSource

CLASSES = 3
SEED = 1234
CPU = {"providers": [{"name": "CPUExecutionProvider"}], "threads": 1}


def build_outlier_model(path: Path) -> Path:
    """Write the outlier MLP, with ``CLASSES`` classes, to ``path`` (a ``.keras`` file)."""
    return mixed_models.build_outlier_model(path, classes=CLASSES)


def digits_split() -> dict[str, np.ndarray]:
    """scikit-learn's digits as (n, 8, 8, 1) floats in [0, 1], shuffled with a fixed seed."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images.astype(np.float32) / 16.0)[..., np.newaxis]
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(images))
    images, labels = images[order], labels[order]
    return {
        "validation": images[:400],
        "validation_labels": labels[:400],
        "calibration": images[400:600],
        "train": images[400:],
        "train_labels": labels[400:],
    }


def build_digits_cnn(path: Path, split: Mapping[str, np.ndarray]) -> Path:
    """Train the CNN (about 10 s) and write it to ``path`` (a ``.keras`` file)."""
    from edgepack.model.tf_env import import_keras, import_tensorflow

    tf = import_tensorflow()
    keras = import_keras()
    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    image = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(image)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(32, 1, activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    probabilities = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    net = keras.Model(image, probabilities, name="digits_bn_cnn")
    net.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    net.fit(split["train"], split["train_labels"], epochs=8, batch_size=32, verbose=0)
    net.save(path)
    return path


def gate_for(
    source: ModelSource, validation: Batch, thresholds: Thresholds | None = None
) -> Callable[[ModelArtifact], FidelityReport]:
    """The build's gate with ONNX Runtime (CPU) on the build host: ``mixed_models.gate_for``."""
    return mixed_models.gate_for(source, "onnxruntime", CPU, validation, thresholds)


run_pass = pass_runner("test-onnx-int8")
