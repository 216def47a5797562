"""openvino-quantize with accuracy control: NNCF reverts the layers that cost agreement, the
real fidelity gate (OpenVINO CPU, f32) decides, and NNCF's chatter stays off stdout.

Measured on the build machine (2026-11), rare-input MLP (mixed_models.py), 200 validation
samples: plain NNCF int8 top-1 agreement 0.925; NNCF reverts ``hidden`` (the layer reading the
rare input) first, which gives 0.99 with ``head`` still int8. On the outlier MLP NNCF's greedy
order ends with every layer reverted: the pass refuses that (no int8 left).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mixed_models import (
    INPUT,
    build_outlier_model,
    build_rare_input_model,
    calibration_of,
    features,
    gate_for,
    rare_input_features,
    run_pass,
)

from edgepack.errors import ConfigError, DataError, PassError
from edgepack.model.base import ModelArtifact, ModelSource
from edgepack.model.loader import load_model
from edgepack.passes.openvino import OpenVinoQuantize
from edgepack.passes.openvino_mixed import quantized_ops

CPU_F32 = {"device": "CPU", "inference_precision": "f32", "threads": 1}
# The drop NNCF may accept, matching the default gate's min top-1 agreement of 0.98.
MIXED = {"accuracy_control": True, "max_drop": 0.02}


def prepare(source: ModelSource, work: Path, x_cal: Any, x_val: Any) -> dict[str, Any]:
    ir = run_pass("openvino-convert", source.artifact, {}, work / "ir")
    validation = {INPUT: x_val}
    return {
        "ir": ir,
        "calibration": calibration_of(x_cal),
        "validation": validation,
        "gate": gate_for(source, "openvino", CPU_F32, validation),
    }


@pytest.fixture(scope="module")
def rare(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("rare")
    source = load_model(build_rare_input_model(work / "rare.keras"))
    return prepare(source, work, rare_input_features(1, 200), rare_input_features(2, 200))


def quantize(case: dict[str, Any], config: dict[str, Any], work: Path, gated: bool = True) -> ModelArtifact:
    return run_pass(
        "openvino-quantize",
        case["ir"],
        config,
        work,
        calibration=case["calibration"],
        validation=case["validation"] if gated else None,
        gate=case["gate"] if gated else None,
    )


def test_config_fields_and_validation_needs() -> None:
    p = OpenVinoQuantize()
    default = p.parse_config({}, "t")
    on = p.parse_config(MIXED, "t")
    assert (default.accuracy_control, default.max_drop, default.max_iterations) == (False, 0.01, 8)  # type: ignore[attr-defined]
    assert (p.requires_validation(default), p.requires_validation(on)) == (False, True)
    for bad in ({"max_drop": 1.5}, {"max_iterations": -1}):
        with pytest.raises(ConfigError):
            p.parse_config(bad, "t")


def test_accuracy_control_without_validation_data_is_a_data_error(
    rare: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(DataError, match="accuracy_control needs validation data"):
        quantize(rare, MIXED, tmp_path, gated=False)


def test_accuracy_control_ships_int8_with_the_rare_input_layer_in_float(
    rare: dict[str, Any], tmp_path: Path
) -> None:
    import openvino as ov

    full = quantize(rare, {}, tmp_path / "full")
    assert not rare["gate"](full).passed  # the premise

    mixed = quantize(rare, MIXED, tmp_path / "mixed")
    assert mixed.precision == "int8" and mixed.path == tmp_path / "mixed" / "model.xml"
    assert sorted(p.name for p in (tmp_path / "mixed").iterdir()) == ["model.bin", "model.xml"]
    q = mixed.details["quantization"]
    assert q["accuracy_control"] is True and q["full_int8"]["passed"] is False
    assert q["result"]["passed"] is True and q["result"]["top1_agreement"] >= 0.98
    assert [layer["op"] for layer in q["float_layers"]] == ["MatMul"]
    assert "hidden" in q["float_layers"][0]["layer"]
    assert q["fake_quantize"]["result"] < q["fake_quantize"]["full_int8"]
    json.dumps(mixed.details)

    # The IR agrees: `head` still computes on int8, `hidden` does not.
    still_int8 = quantized_ops(ov.Core().read_model(str(mixed.path)))
    assert any("head" in name for name in still_int8)
    assert not any("hidden" in name for name in still_int8)
    assert rare["gate"](mixed).passed


def test_max_iterations_zero_is_a_one_line_pass_error(rare: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(PassError) as info:
        quantize(rare, {**MIXED, "max_iterations": 0}, tmp_path)
    assert "\n" not in str(info.value)
    assert "fails the fidelity gate: top-1 agreement 0.9" in str(info.value)


def test_reverting_every_layer_is_refused(tmp_path: Path) -> None:
    source = load_model(build_outlier_model(tmp_path / "outlier.keras"))
    case = prepare(source, tmp_path, features(1, 200), features(2, 200))
    with pytest.raises(PassError, match="no int8 is left") as info:
        quantize(case, MIXED, tmp_path / "q")
    assert "\n" not in str(info.value)


def test_quantize_prints_nothing_on_stdout(
    rare: dict[str, Any], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    quantize(rare, MIXED, tmp_path / "quiet")
    quantize(rare, {}, tmp_path / "plain")
    out, err = capfd.readouterr()
    assert out == ""
    assert "Statistics collection" in err or err == ""  # progress bars, if any, went to stderr
