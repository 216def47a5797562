"""Models and a real fidelity gate for the ONNX int8 tests (helpers, not fixtures).

``build_outlier_model``: a small MLP with fixed weights (no training, the same on every run),
``features (16) -> hidden (32, relu) -> outlier (32) -> head (3) -> scores (softmax)``. Two of
``outlier``'s units are scaled by 1000 and ``head`` reads them scaled by 1/1000: the scores do
not depend on them, but int8 gives ``outlier``'s output one scale for its whole range, so the
30 units that matter fall into a step or two and full int8 fails any gate.

``build_digits_cnn``: a small Keras CNN (Conv2D, BatchNorm, DepthwiseConv2D, Dense) trained a
few epochs on scikit-learn's 8x8 digits, deterministic (fixed seeds, deterministic ops).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgepack.build import host_predictor
from edgepack.config import Thresholds
from edgepack.fidelity import FidelityReport, evaluate
from edgepack.model.base import Batch, ModelArtifact, ModelSource
from edgepack.passes import PassContext, get_pass

INPUT = "features"
OUTLIER_GAIN = 1000.0
CLASSES = 3
SEED = 1234
CPU = {"providers": [{"name": "CPUExecutionProvider"}], "threads": 1}


def build_outlier_model(path: Path) -> Path:
    """Write the outlier MLP to ``path`` (a ``.keras`` file)."""
    from edgepack.model.tf_env import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    features = keras.Input((16,), name=INPUT)
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(features)
    outlier = keras.layers.Dense(32, name="outlier")(hidden)
    logits = keras.layers.Dense(CLASSES, name="head")(outlier)
    scores = keras.layers.Softmax(name="scores")(logits)
    net = keras.Model(features, scores)
    w, b = net.get_layer("outlier").get_weights()
    w[:, :2] *= OUTLIER_GAIN
    net.get_layer("outlier").set_weights([w, b])
    w, b = net.get_layer("head").get_weights()
    w[:2, :] /= OUTLIER_GAIN
    net.get_layer("head").set_weights([w, b])
    net.save(path)
    return path


def features(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 16)).astype(np.float32)


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
    """The build's gate, assembled from its parts: ONNX Runtime on the build host, the original
    model's outputs as the reference, the given (default: the project's default) thresholds."""
    reference = source.predict(validation)

    def gate(candidate: ModelArtifact) -> FidelityReport:
        predictor = host_predictor(
            "onnxruntime",
            candidate.path,
            CPU,
            candidate.signature,
            candidate.native_inputs,
            candidate.native_outputs,
        )
        return evaluate(reference, predictor.predict(validation), None, thresholds or Thresholds())

    return gate


def run_pass(
    name: str,
    model: ModelArtifact,
    config: dict[str, Any],
    work: Path,
    calibration: Callable[[], Iterator[Batch]] | None = None,
    validation: Batch | None = None,
    gate: Callable[[ModelArtifact], FidelityReport] | None = None,
    target: str = "test-onnx-int8",
) -> ModelArtifact:
    p = get_pass(name)
    work.mkdir(parents=True, exist_ok=True)
    ctx = PassContext(
        work_dir=work,
        target=target,
        calibration=calibration,
        validation=(lambda: validation) if validation is not None else None,
        gate=gate,
    )
    return p.run(model, p.parse_config(config, name), ctx)
