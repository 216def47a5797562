"""ONNX int8 with the jetson-trt settings, and accuracy-controlled mixed precision.

Real tf2onnx, ONNX Runtime quantizer and ONNX Runtime; small models built here (no network).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from int8_models import build_digits_cnn, build_outlier_model, digits_split, gate_for, run_pass
from mixed_models import INPUT, calibration_of, features

from edgepack.errors import ConfigError, PassError
from edgepack.fidelity import FidelityReport
from edgepack.model.base import ModelArtifact, ModelSource
from edgepack.model.loader import load_model
from edgepack.passes import get_pass

# What targets/jetson-trt.yaml's int8 variant asks for: TensorRT's symmetric int8 in QDQ form.
JETSON = {
    "mode": "static",
    "activation_type": "QInt8",
    "weight_type": "QInt8",
    "activation_symmetric": True,
    "per_channel": True,
    "op_types_to_quantize": ["Conv", "MatMul", "Gemm"],
}


@pytest.fixture(scope="module")
def outlier(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelSource, ModelArtifact]:
    work = tmp_path_factory.mktemp("outlier")
    source = load_model(build_outlier_model(work / "outlier.keras"))
    return source, run_pass("onnx-convert", source.artifact, {}, work / "onnx")


@pytest.fixture(scope="module")
def outlier_gate(outlier: tuple[ModelSource, ModelArtifact]) -> Callable[[ModelArtifact], FidelityReport]:
    return gate_for(outlier[0], {INPUT: features(2, 400)})


# -- the jetson settings on a converted CNN ------------------------------------------


def test_jetson_int8_keeps_a_converted_bn_cnn(tmp_path: Path, record_property: Any) -> None:
    """tf2onnx's conv net (BatchNorm folded by quant_pre_process, depthwise conv, Dense) keeps
    its answers with symmetric per-channel QDQ int8."""
    split = digits_split()
    source = load_model(build_digits_cnn(tmp_path / "cnn.keras", split))
    fp32 = run_pass("onnx-convert", source.artifact, {}, tmp_path / "fp32")
    calibration = split["calibration"]
    model = run_pass("onnx-quantize", fp32, JETSON, tmp_path / "int8", lambda: iter([{"image": calibration}]))
    gate = gate_for(source, {"image": split["validation"]})
    report = gate(model)
    record_property("jetson_int8_top1_agreement", report.metrics.top1_agreement)
    assert report.metrics.top1_agreement is not None and report.metrics.top1_agreement >= 0.99
    assert model.details["quantization"]["calibration_samples"] == len(calibration)


# -- accuracy control ---------------------------------------------------------------


def test_full_int8_fails_the_gate_on_outliers(
    outlier: tuple[ModelSource, ModelArtifact],
    outlier_gate: Callable[[ModelArtifact], FidelityReport],
    tmp_path: Path,
) -> None:
    model = run_pass("onnx-quantize", outlier[1], JETSON, tmp_path, calibration_of(features(1, 256)))
    assert not outlier_gate(model).passed


def test_accuracy_control_keeps_the_outlier_nodes_in_float(
    outlier: tuple[ModelSource, ModelArtifact],
    outlier_gate: Callable[[ModelArtifact], FidelityReport],
    tmp_path: Path,
    record_property: Any,
) -> None:
    import onnx

    validation = {INPUT: features(2, 400)}
    config = {**JETSON, "accuracy_control": True, "max_float_nodes": 4}
    model = run_pass(
        "onnx-quantize",
        outlier[1],
        config,
        tmp_path,
        calibration_of(features(1, 256)),
        validation,
        outlier_gate,
    )
    assert model.precision == "int8"
    q = model.details["quantization"]
    floats = q["float_nodes"]
    record_property("onnx_mixed_float_nodes", floats)
    assert 1 <= len(floats) <= 4
    assert all(set(f) >= {"node", "op", "error"} and f["error"] > 0 for f in floats)
    assert q["full_int8"]["passed"] is False and q["result"]["passed"] is True
    assert q["nodes_ranked"] == 3 and q["error_samples"] == 256
    assert outlier_gate(model).passed  # the shipped file is the one that passed
    # The float nodes are in the shipped file under the names recorded, unquantized; the rest int8.
    proto = onnx.load(str(model.path))
    by_name = {n.name: n for n in proto.graph.node}
    produced_by_dq = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    for f in floats:
        node = by_name[f["node"]]
        assert node.op_type == f["op"]
        assert not produced_by_dq.intersection(node.input)
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    assert not list(tmp_path.glob("mixed-*.onnx")) and not list(tmp_path.glob("calibration-ranges*"))


def test_accuracy_control_with_no_float_nodes_allowed_fails_in_one_line(
    outlier: tuple[ModelSource, ModelArtifact],
    outlier_gate: Callable[[ModelArtifact], FidelityReport],
    tmp_path: Path,
) -> None:
    config = {**JETSON, "accuracy_control": True, "max_float_nodes": 0}
    with pytest.raises(PassError, match="max_float_nodes is 0") as info:
        run_pass(
            "onnx-quantize",
            outlier[1],
            config,
            tmp_path,
            calibration_of(features(1, 256)),
            {INPUT: features(2, 400)},
            outlier_gate,
        )
    assert "\n" not in info.value.hint() and "top-1 agreement" in info.value.hint()


def test_accuracy_control_passing_full_int8_keeps_every_node_int8(
    outlier: tuple[ModelSource, ModelArtifact], tmp_path: Path
) -> None:
    """A gate full int8 passes: nothing is ranked, nothing stays float."""
    lenient = gate_for(outlier[0], {INPUT: features(2, 100)})

    def always(candidate: ModelArtifact) -> FidelityReport:
        report = lenient(candidate)
        report.failures.clear()
        return report

    config = {**JETSON, "accuracy_control": True}
    model = run_pass(
        "onnx-quantize",
        outlier[1],
        config,
        tmp_path,
        calibration_of(features(1, 64)),
        {INPUT: features(2, 100)},
        always,
    )
    assert model.details["quantization"]["float_nodes"] == []
    assert model.details["quantization"]["nodes_ranked"] == 0


# -- config ---------------------------------------------------------------------------


def test_accuracy_control_requires_validation_and_all_op_types_parse() -> None:
    from edgepack.passes.onnx import OnnxQuantizeConfig, quantizable_op_types, to_quantize_kwargs

    p = get_pass("onnx-quantize")
    plain = p.parse_config({}, "q")
    assert not p.requires_validation(plain)
    controlled = p.parse_config({"accuracy_control": True, "max_float_nodes": 3}, "q")
    assert p.requires_validation(controlled)
    every = p.parse_config({"op_types_to_quantize": "all"}, "q")
    assert isinstance(every, OnnxQuantizeConfig) and every.op_types_to_quantize == "all"
    assert to_quantize_kwargs(every)["op_types_to_quantize"] is None  # ORT's own "every op"
    assert {"Conv", "MatMul", "Gemm", "Add"} <= quantizable_op_types(every)
    assert p.parse_config({"op_types_to_quantize": ["Conv"]}, "q").op_types_to_quantize == ["Conv"]  # type: ignore[attr-defined]
    bad: dict[str, Any]
    for bad in ({"op_types_to_quantize": "some"}, {"op_types_to_quantize": []}, {"max_float_nodes": -1}):
        with pytest.raises(ConfigError):
            p.parse_config(bad, "q")
