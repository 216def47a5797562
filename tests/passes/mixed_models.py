"""What the accuracy-control and int8 tests share: a model full int8 ruins, and a real fidelity gate.

The model is a small MLP with fixed weights (no training, so it is the same on every run):
``features (16) -> hidden (32, relu) -> outlier (32) -> head (10) -> scores (softmax)``. Two of
``outlier``'s units are scaled by 1000, and ``head`` reads them scaled by 1/1000: the scores do
not depend on them, but int8 gives ``outlier``'s output one scale for its whole range, so the
30 units that do matter fall into a step or two. Measured (2026-11): full int8 top-1
agreement with the Keras model 0.09 in LiteRT; keeping ``outlier`` and what reads it in float
restores it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from passes_helpers import pass_runner

from edgepack.build import host_predictor
from edgepack.config import Thresholds
from edgepack.fidelity import FidelityReport, evaluate
from edgepack.model.base import Batch, ModelArtifact, ModelSource

INPUT = "features"
OUTLIER_GAIN = 1000.0
RARE_INPUT = 10000.0
CLASSES = 3


def build_outlier_model(path: Path, classes: int = 10) -> Path:
    """Write the outlier MLP to ``path`` (a ``.keras`` file)."""
    from edgepack.model.tf_env import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    features = keras.Input((16,), name=INPUT)
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(features)
    outlier = keras.layers.Dense(32, name="outlier")(hidden)
    logits = keras.layers.Dense(classes, name="head")(outlier)
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


def build_rare_input_model(path: Path) -> Path:
    """The same MLP without outlier units, but ``hidden`` reads input 0 scaled by 1/10000: made
    for ``rare_input_features``, where input 0 is sometimes about 10000."""
    from edgepack.model.tf_env import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    x = keras.Input((16,), name=INPUT)
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(x)
    logits = keras.layers.Dense(CLASSES, name="head")(hidden)
    net = keras.Model(x, logits)
    w, b = net.get_layer("hidden").get_weights()
    w[0, :] /= RARE_INPUT
    net.get_layer("hidden").set_weights([w, b])
    net.save(path)
    return path


def rare_input_features(seed: int, n: int) -> np.ndarray:
    """Normal inputs, except that input 0 of one sample in 50 is about +-10000."""
    x = features(seed, n)
    x[::50, 0] *= RARE_INPUT
    return x


def calibration_of(x: np.ndarray) -> Callable[[], Iterator[Batch]]:
    return lambda: iter([{INPUT: x[: len(x) // 2]}, {INPUT: x[len(x) // 2 :]}])


def gate_for(
    source: ModelSource,
    backend: str,
    settings: Mapping[str, Any],
    validation: Batch,
    thresholds: Thresholds | None = None,
) -> Callable[[ModelArtifact], FidelityReport]:
    """The build's gate, assembled from its parts: the target's runtime on the build host,
    the original model's outputs as the reference, the given (default: the project's default)
    thresholds."""
    reference = source.predict(validation)

    def gate(candidate: ModelArtifact) -> FidelityReport:
        predictor = host_predictor(
            backend,
            candidate.path,
            settings,
            candidate.signature,
            candidate.native_inputs,
            candidate.native_outputs,
        )
        return evaluate(reference, predictor.predict(validation), None, thresholds or Thresholds())

    return gate


run_pass = pass_runner("test-mixed")
