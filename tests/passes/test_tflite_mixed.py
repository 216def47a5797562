"""tflite-convert int8 with accuracy control: TensorFlow's quantization debugger ranks the
layers, the worst stay in float until LiteRT's result passes the real fidelity gate.

Measured on the build machine (2026-11), outlier MLP (mixed_models.py), 200 validation samples:
full int8 top-1 agreement 0.09 (cosine 0.86); with ``outlier``, ``head`` and the softmax in
float 0.985 (cosine 0.99996), the gate passes; ``hidden`` stays int8.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mixed_models import INPUT, build_outlier_model, calibration_of, features, gate_for, run_pass

from edgepack.errors import ConfigError, DataError, PassError
from edgepack.model.base import ModelArtifact, ModelSource
from edgepack.model.loader import load_model
from edgepack.passes.tflite import TFLiteConvert

MIXED = {"mode": "int8", "accuracy_control": True}


@pytest.fixture(scope="module")
def outlier(tmp_path_factory: pytest.TempPathFactory) -> ModelSource:
    return load_model(build_outlier_model(tmp_path_factory.mktemp("outlier") / "outlier.keras"))


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    validation = {INPUT: features(seed=2, n=200)}
    return {"calibration": calibration_of(features(seed=1, n=200)), "validation": validation}


def convert(
    source: ModelSource, config: dict[str, Any], work: Path, data: dict[str, Any], gated: bool = True
) -> ModelArtifact:
    gate = gate_for(source, "litert", {"threads": 1}, data["validation"]) if gated else None
    return run_pass(
        "tflite-convert",
        source.artifact,
        config,
        work,
        calibration=data["calibration"],
        validation=data["validation"] if gated else None,
        gate=gate,
    )


@pytest.fixture(scope="module")
def mixed(
    outlier: ModelSource, data: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> ModelArtifact:
    return convert(outlier, MIXED, tmp_path_factory.mktemp("mixed"), data)


# -- config -------------------------------------------------------------------------------


def test_accuracy_control_is_off_by_default_and_needs_validation_only_when_on() -> None:
    p = TFLiteConvert()
    default = p.parse_config({"mode": "int8"}, "t")
    on = p.parse_config(MIXED, "t")
    assert (default.accuracy_control, default.max_float_layers) == (False, 8)  # type: ignore[attr-defined]
    assert (p.requires_validation(default), p.requires_validation(on)) == (False, True)


@pytest.mark.parametrize(
    "raw",
    [
        {"mode": "int16x8", "accuracy_control": True},
        {"mode": "int8", "io_dtype": "int8", "accuracy_control": True},
        {"mode": "int8", "allow_float_ops": False, "accuracy_control": True},
        {"mode": "int8", "accuracy_control": True, "max_float_layers": -1},
    ],
)
def test_config_rejects_accuracy_control_where_layers_cannot_stay_float(raw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        TFLiteConvert().parse_config(raw, "targets/x.yaml: passes.0")


def test_accuracy_control_without_validation_data_is_a_data_error(
    outlier: ModelSource, data: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(DataError, match="accuracy_control needs validation data"):
        convert(outlier, MIXED, tmp_path, data, gated=False)


# -- the outlier model --------------------------------------------------------------------


def test_full_int8_fails_the_gate_on_the_outlier_model(
    outlier: ModelSource, data: dict[str, Any], tmp_path: Path
) -> None:
    """The premise: without accuracy control, int8 ruins this model."""
    full = convert(outlier, {"mode": "int8"}, tmp_path, data)
    report = gate_for(outlier, "litert", {"threads": 1}, data["validation"])(full)
    assert not report.passed
    assert report.metrics.top1_agreement is not None and report.metrics.top1_agreement < 0.5


def test_accuracy_control_ships_int8_with_a_few_float_layers_that_passes(
    mixed: ModelArtifact, outlier: ModelSource, data: dict[str, Any]
) -> None:
    assert mixed.precision == "int8"
    assert mixed.path.name == "model.tflite" and mixed.path.is_file()
    assert sorted(p.name for p in mixed.path.parent.glob("*.tflite")) == ["model.tflite"]
    q = mixed.details["quantization"]
    assert q["accuracy_control"] is True
    assert q["full_int8"]["passed"] is False and q["full_int8"]["top1_agreement"] < 0.5
    assert q["result"]["passed"] is True and q["result"]["top1_agreement"] >= 0.98
    layers = q["float_layers"]
    assert 1 <= len(layers) <= 8
    # The layer whose range the outliers stretch is the worst, and it is in float.
    assert "outlier" in layers[0]["layer"] and layers[0]["op"] == "FULLY_CONNECTED"
    assert all(set(layer) == {"layer", "op", "error"} for layer in layers)
    assert [layer["error"] for layer in layers] == sorted((layer["error"] for layer in layers), reverse=True)
    # Everything else stays int8: `hidden` is still an integer FULLY_CONNECTED with int8 weights.
    assert mixed.details["weights"].get("int8", 0) > 0
    assert "FULLY_CONNECTED" in mixed.details["float_ops"]
    json.dumps(mixed.details)

    # What ships passes the same gate again, in the runtime the target uses.
    report = gate_for(outlier, "litert", {"threads": 1}, data["validation"])(mixed)
    assert report.passed, report.failures


def test_the_mixed_model_runs_in_ai_edge_litert(mixed: ModelArtifact, data: dict[str, Any]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(mixed.path)).get_signature_runner("serving_default")
    x = data["validation"][INPUT][:4]
    scores = np.concatenate([runner(**{INPUT: x[i : i + 1]})["scores"] for i in range(len(x))])
    assert scores.shape == (4, 10)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-2)


@pytest.mark.parametrize("budget", [0, 1])
def test_too_few_float_layers_is_a_one_line_pass_error(
    budget: int, outlier: ModelSource, data: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(PassError) as info:
        convert(outlier, {**MIXED, "max_float_layers": budget}, tmp_path, data)
    message = str(info.value)
    assert "\n" not in message
    assert "fidelity gate" in message and "top-1 agreement 0.0" in message  # full int8: 0.09
    if budget:
        assert "best top-1 agreement" in message


def test_a_model_full_int8_keeps_is_returned_without_float_layers(
    data: dict[str, Any], tmp_path: Path
) -> None:
    from edgepack.model.tf_env import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16,), name=INPUT)
    # Three classes: an untrained ten-class head has near ties that int8 flips (0.975 measured).
    logits = keras.layers.Dense(3, name="head")(
        keras.layers.Dense(32, activation="relu", name="hidden")(inputs)
    )
    keras.Model(inputs, logits).save(tmp_path / "plain.keras")
    plain = load_model(tmp_path / "plain.keras")

    result = convert(plain, MIXED, tmp_path / "work", data)
    q = result.details["quantization"]
    assert q["float_layers"] == [] and q["full_int8"]["passed"] is True
    assert result.details["float_ops"] == []
