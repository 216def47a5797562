"""ONNX passes on the sample model, with tf2onnx, ONNX Runtime's quantizer and ONNX Runtime itself.

Each model is converted once per session. Measured on the build machine (2026-11):
fp32 ONNX vs Keras max abs error 5e-7; static QDQ int8 top-1 agreement 1.0, accuracy
0.978 (Keras 0.978); dynamic int8 agreement 1.0; fp16 max abs error 1.5e-3.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from passes_helpers import gate, pass_runner

from edgepack.errors import ConfigError, DataError, UnsupportedOpError
from edgepack.model.base import Batch, ModelArtifact, ModelSource
from edgepack.model.loader import load_model
from edgepack.passes import get_pass
from edgepack.runtime.backends import load_backend
from edgepack.runtime.predictor import Predictor
from edgepack.targets import load_target

TARGET = "test-onnx"
FP32_TOLERANCE = 1e-5  # measured 5e-7
FP16_TOLERANCE = 5e-3  # measured 1.5e-3
CPU = {"providers": [{"name": "CPUExecutionProvider"}], "threads": 1}


# -- helpers ------------------------------------------------------------------------


run_pass = pass_runner(TARGET)


def predict_with_ort(model: ModelArtifact, inputs: Batch, settings: dict[str, Any] = CPU) -> Batch:
    backend = load_backend("onnxruntime", model.path, settings)
    return Predictor(backend, model.signature, model.native_inputs, model.native_outputs).predict(inputs)


def initializer_bytes(path: Path) -> int:
    import onnx
    from onnx import numpy_helper

    return sum(numpy_helper.to_array(t).nbytes for t in onnx.load(str(path)).graph.initializer)


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def calibration(calibration_npz: Path) -> Callable[[], Iterator[Batch]]:
    images = np.load(calibration_npz)["image"]
    return lambda: iter([{"image": images[:100]}, {"image": images[100:]}])


@pytest.fixture(scope="session")
def calibration_constant(calibration_npz: Path) -> Callable[[], Iterator[Batch]]:
    """Fault: every calibration image is the same flat grey, so the ranges are wrong."""
    images = np.full_like(np.load(calibration_npz)["image"], 0.5)
    return lambda: iter([{"image": images}])


@pytest.fixture(scope="session")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-passes")


@pytest.fixture(scope="session")
def onnx_fp32(digits: ModelSource, work: Path) -> ModelArtifact:
    return run_pass("onnx-convert", digits.artifact, {}, work / "fp32")


@pytest.fixture(scope="session")
def onnx_int8(
    onnx_fp32: ModelArtifact, work: Path, calibration: Callable[[], Iterator[Batch]]
) -> ModelArtifact:
    # What the jetson-trt profile asks for: symmetric QDQ, per-channel, compute-heavy ops only.
    config = load_target("jetson-trt").variants[0].passes[1].config
    return run_pass("onnx-quantize", onnx_fp32, config, work / "int8", calibration)


# -- onnx-convert -------------------------------------------------------------------


def test_convert_keeps_public_names_and_dynamic_batch(onnx_fp32: ModelArtifact) -> None:
    import onnx

    proto = onnx.load(str(onnx_fp32.path))
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == ["probabilities"]
    assert onnx_fp32.native_inputs == () and onnx_fp32.native_outputs == ()
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert not batch_dim.HasField("dim_value")  # symbolic: any batch size
    assert onnx_fp32.details["onnx_opset"] == 17
    backend = load_backend("onnxruntime", onnx_fp32.path, CPU)
    assert backend.signature.inputs[0].shape == (None, 8, 8, 1)
    assert backend.signature.outputs[0].dtype == "float32"


def test_fp32_onnx_answers_like_keras(
    onnx_fp32: ModelArtifact,
    validation: tuple[Batch, np.ndarray],
    keras_reference: Batch,
    record_property: Any,
) -> None:
    inputs, labels = validation
    candidate = predict_with_ort(onnx_fp32, inputs)
    report = gate(keras_reference, candidate, labels)
    record_property("onnx_fp32_max_abs_error", report.metrics.max_abs_error)
    assert report.metrics.max_abs_error < FP32_TOLERANCE
    assert report.passed, report.failures
    one = predict_with_ort(onnx_fp32, {"image": inputs["image"][:1]})  # batch 1 as well as 500
    np.testing.assert_allclose(
        one["probabilities"], keras_reference["probabilities"][:1], atol=FP32_TOLERANCE
    )


def test_conversion_is_reproducible(digits: ModelSource, tmp_path: Path) -> None:
    """tf2onnx numbers the names it invents from a process-wide counter: without
    canonical names, converting the same model twice gives two different files."""
    first = run_pass("onnx-convert", digits.artifact, {}, tmp_path / "a")
    second = run_pass("onnx-convert", digits.artifact, {}, tmp_path / "b")
    assert first.path.read_bytes() == second.path.read_bytes()


def test_opset_is_configurable(digits: ModelSource, tmp_path: Path) -> None:
    import onnx

    model = run_pass("onnx-convert", digits.artifact, {"opset": 13}, tmp_path)
    opsets = {i.domain: i.version for i in onnx.load(str(model.path)).opset_import}
    assert opsets[""] == 13


def test_config_rejects_unknown_keys_and_bad_opset() -> None:
    p = get_pass("onnx-convert")
    with pytest.raises(ConfigError, match=r"onnx-convert\.opsett"):
        p.parse_config({"opsett": 17}, "onnx-convert")
    with pytest.raises(ConfigError, match="opset"):
        p.parse_config({"opset": 30}, "onnx-convert")


def test_onnx_input_passes_through(onnx_fp32: ModelArtifact, tmp_path: Path) -> None:
    copied = run_pass("onnx-convert", onnx_fp32, {}, tmp_path)
    assert copied.path.parent == tmp_path and copied.path != onnx_fp32.path
    assert copied.signature == onnx_fp32.signature
    assert copied.details["converter"] == "passthrough"
    x = np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32)
    np.testing.assert_array_equal(
        predict_with_ort(copied, {"image": x})["probabilities"],
        predict_with_ort(onnx_fp32, {"image": x})["probabilities"],
    )


def test_savedmodel_with_other_native_names(digits: ModelSource, tmp_path: Path) -> None:
    """A Keras export names its output ``output_0``: the ONNX file gets the public name."""
    from edgepack.model.tf_env import import_keras

    import_keras()
    keras_model = digits.model  # type: ignore[attr-defined]
    keras_model.export(str(tmp_path / "saved"), verbose=False)
    source = load_model(tmp_path / "saved", output_names=["probabilities"])
    assert source.artifact.native_outputs == ("output_0",)
    model = run_pass("onnx-convert", source.artifact, {}, tmp_path / "onnx")
    x = np.random.default_rng(1).random((4, 8, 8, 1), dtype=np.float32)
    out = predict_with_ort(model, {"image": x})
    np.testing.assert_allclose(out["probabilities"], source.predict({"image": x})["probabilities"], atol=1e-5)


def test_multi_io_keeps_names_and_order(multi_io_keras_path: Path, tmp_path: Path) -> None:
    import onnx

    source = load_model(multi_io_keras_path)
    assert source.artifact.signature.output_names == ("class_probs", "score")
    assert source.artifact.signature.input_names == ("pixels", "meta")
    model = run_pass("onnx-convert", source.artifact, {}, tmp_path)
    proto = onnx.load(str(model.path))
    assert [i.name for i in proto.graph.input] == ["pixels", "meta"]
    assert [o.name for o in proto.graph.output] == list(source.artifact.signature.output_names)
    rng = np.random.default_rng(2)
    batch = {
        "pixels": rng.random((5, 4, 4, 1), dtype=np.float32),
        "meta": rng.random((5, 3), dtype=np.float32),
    }
    expected = source.predict(batch)
    got = predict_with_ort(model, batch)
    assert list(got) == list(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5)


def test_config_renames_become_the_file_names(multi_io_keras_path: Path, tmp_path: Path) -> None:
    """Public names from the config (model.inputs/outputs) name the ONNX tensors; no native map needed."""
    import onnx

    source = load_model(multi_io_keras_path, input_names=["picture", "info"], output_names=["probs", "value"])
    model = run_pass("onnx-convert", source.artifact, {}, tmp_path)
    proto = onnx.load(str(model.path))
    assert [i.name for i in proto.graph.input] == ["picture", "info"]
    assert [o.name for o in proto.graph.output] == ["probs", "value"]
    assert model.native_inputs == () and model.native_outputs == ()
    rng = np.random.default_rng(4)
    batch = {
        "picture": rng.random((3, 4, 4, 1), dtype=np.float32),
        "info": rng.random((3, 3), dtype=np.float32),
    }
    expected = source.predict(batch)
    got = predict_with_ort(model, batch)
    for name in ("probs", "value"):
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5)


# -- unsupported ops ----------------------------------------------------------------


def test_tf_op_without_onnx_mapping_names_the_op(sqrtm_savedmodel: ModelSource, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOpError) as info:
        run_pass("onnx-convert", sqrtm_savedmodel.artifact, {}, tmp_path)
    assert info.value.op == "MatrixSquareRoot"
    assert info.value.target == TARGET
    assert "\n" not in info.value.hint()


def test_custom_domain_onnx_is_refused_with_the_op(custom_op_onnx: ModelArtifact, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOpError, match=r"operation com\.example\.FancyWarp") as info:
        run_pass("onnx-convert", custom_op_onnx, {}, tmp_path / "out")
    assert "\n" not in info.value.hint()


# -- onnx-quantize ------------------------------------------------------------------


def test_static_qdq_int8_keeps_accuracy(
    onnx_fp32: ModelArtifact,
    onnx_int8: ModelArtifact,
    validation: tuple[Batch, np.ndarray],
    keras_reference: Batch,
    record_property: Any,
) -> None:
    import onnx

    ops = {n.op_type for n in onnx.load(str(onnx_int8.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ: what TensorRT reads
    assert onnx_int8.precision == "int8"
    assert onnx_int8.details["quantization"]["format"] == "QDQ"
    assert onnx_int8.details["preprocess"] == "ok"
    inputs, labels = validation
    report = gate(keras_reference, predict_with_ort(onnx_int8, inputs), labels)
    m = report.metrics
    assert m.top1_agreement is not None and m.top1_agreement >= 0.98
    assert m.accuracy_drop is not None and m.accuracy_drop <= 0.01
    assert report.passed, report.failures

    file_ratio = onnx_int8.path.stat().st_size / onnx_fp32.path.stat().st_size
    weight_ratio = initializer_bytes(onnx_int8.path) / initializer_bytes(onnx_fp32.path)
    record_property("onnx_int8_top1_agreement", m.top1_agreement)
    record_property("onnx_int8_accuracy_drop", m.accuracy_drop)
    record_property("onnx_int8_file_ratio", round(file_ratio, 3))
    record_property("onnx_int8_weight_ratio", round(weight_ratio, 3))
    # Weights are int8 (0.25x plus scales). The file also holds ~14 KB of tensor and node
    # names, which on this 150 KB model is a tenth of it: the file ratio is ~0.35x here.
    assert weight_ratio <= 0.30
    assert file_ratio <= 0.40


def test_dynamic_int8_needs_no_calibration(
    onnx_fp32: ModelArtifact, validation: tuple[Batch, np.ndarray], keras_reference: Batch, tmp_path: Path
) -> None:
    p = get_pass("onnx-quantize")
    config = p.parse_config({"mode": "dynamic"}, "onnx-quantize")
    assert not p.requires_calibration(config)
    model = run_pass("onnx-quantize", onnx_fp32, {"mode": "dynamic"}, tmp_path)
    assert model.precision == "dynamic"
    inputs, labels = validation
    report = gate(keras_reference, predict_with_ort(model, inputs), labels)
    assert report.passed, report.failures


def test_static_without_calibration_names_the_target(onnx_fp32: ModelArtifact, tmp_path: Path) -> None:
    assert get_pass("onnx-quantize").requires_calibration(get_pass("onnx-quantize").parse_config({}, "q"))
    with pytest.raises(DataError, match=f"target {TARGET}"):
        run_pass("onnx-quantize", onnx_fp32, {"mode": "static"}, tmp_path)


def test_constant_calibration_collapses_fidelity_and_the_gate_sees_it(
    onnx_fp32: ModelArtifact,
    validation: tuple[Batch, np.ndarray],
    keras_reference: Batch,
    calibration_constant: Callable[[], Iterator[Batch]],
    tmp_path: Path,
    record_property: Any,
) -> None:
    model = run_pass("onnx-quantize", onnx_fp32, {"mode": "static"}, tmp_path, calibration_constant)
    inputs, labels = validation
    report = gate(keras_reference, predict_with_ort(model, inputs), labels)
    record_property("onnx_int8_constant_calibration_top1", report.metrics.top1_agreement)
    record_property("onnx_int8_constant_calibration_accuracy_drop", report.metrics.accuracy_drop)
    assert not report.passed  # measured: top-1 agreement 0.74, accuracy 0.978 -> 0.738
    assert any("top1_agreement" in f for f in report.failures)


def test_preprocess_failure_falls_back_to_the_raw_model(tmp_path: Path) -> None:
    """Symbolic shape inference cannot see through an op it does not know: quantize anyway."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgepack.runtime.signature import IOSignature, TensorSpec

    weight = numpy_helper.from_array(np.random.default_rng(3).random((16, 16), dtype=np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Opaque", ["h"], ["y"], domain="com.example"),
    ]
    graph = helper.make_graph(
        nodes,
        "opaque",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[weight],
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    onnx.save(proto, str(tmp_path / "opaque.onnx"))
    sig = IOSignature(
        inputs=(TensorSpec("x", "float32", (None, 16)),), outputs=(TensorSpec("y", "float32", (None, 16)),)
    )
    model = ModelArtifact(path=tmp_path / "opaque.onnx", format="onnx", signature=sig)
    out = run_pass("onnx-quantize", model, {"mode": "dynamic"}, tmp_path / "q")
    assert out.details["preprocess"].startswith("failed, quantized the unprocessed model")
    ops = [n.op_type for n in onnx.load(str(out.path)).graph.node]
    assert "MatMulInteger" in ops  # the MatMul was still quantized


def test_quantize_config_translates_to_ort_kwargs() -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    from edgepack.passes.onnx import OnnxQuantizeConfig, to_quantize_kwargs

    kwargs = to_quantize_kwargs(
        OnnxQuantizeConfig(
            mode="static", calibrate_method="Entropy", activation_type="QUInt8", reduce_range=True
        )
    )
    assert kwargs["quant_format"] == QuantFormat.QDQ
    assert kwargs["calibrate_method"] == CalibrationMethod.Entropy
    assert kwargs["activation_type"] == QuantType.QUInt8
    assert kwargs["reduce_range"] is True
    assert kwargs["op_types_to_quantize"] == ["Conv", "MatMul", "Gemm"]
    dynamic = to_quantize_kwargs(OnnxQuantizeConfig(mode="dynamic"))
    assert "calibrate_method" not in dynamic and "quant_format" not in dynamic


# -- onnx-float16 -------------------------------------------------------------------


def test_float16_halves_the_model_and_keeps_float32_io(
    onnx_fp32: ModelArtifact,
    validation: tuple[Batch, np.ndarray],
    keras_reference: Batch,
    tmp_path: Path,
    record_property: Any,
) -> None:
    model = run_pass("onnx-float16", onnx_fp32, {}, tmp_path)
    assert model.precision == "fp16"
    backend = load_backend("onnxruntime", model.path, CPU)
    assert backend.signature.inputs[0].dtype == "float32"  # keep_io_types
    inputs, labels = validation
    report = gate(keras_reference, predict_with_ort(model, inputs), labels)
    ratio = model.path.stat().st_size / onnx_fp32.path.stat().st_size
    record_property("onnx_fp16_max_abs_error", report.metrics.max_abs_error)
    record_property("onnx_fp16_file_ratio", round(ratio, 3))
    assert report.metrics.max_abs_error < FP16_TOLERANCE
    assert report.passed, report.failures
    assert ratio < 0.6


def test_float16_without_io_casts_has_float16_io(onnx_fp32: ModelArtifact, tmp_path: Path) -> None:
    model = run_pass("onnx-float16", onnx_fp32, {"keep_io_types": False}, tmp_path)
    backend = load_backend("onnxruntime", model.path, CPU)
    assert backend.signature.inputs[0].dtype == "float16"
    out = backend.run({"image": np.zeros((2, 8, 8, 1), np.float16)})
    assert out["probabilities"].dtype == np.float16


# -- profiles -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["jetson-trt", "container-cpu", "intel-openvino"])
def test_profile_pass_configs_parse(name: str) -> None:
    """Every pass config in a shipped profile is one its pass accepts (unknown keys rejected)."""
    profile = load_target(name)
    for variant in profile.variants:
        chain_format = "keras"
        for i, spec in enumerate(variant.passes):
            p = get_pass(spec.name)
            p.parse_config(spec.config, f"{name}.variants.{variant.name}.passes.{i}")
            assert chain_format in p.accepts
            chain_format = p.produces


def test_jetson_profile_states_its_device_runtime() -> None:
    profile = load_target("jetson-trt")
    assert profile.backend == "onnxruntime" and profile.arch == "aarch64"
    assert any("onnxruntime-gpu" in p for p in profile.device_packages)
    assert not any(p.startswith("onnxruntime") for p in profile.runtime_packages)  # the device has it
    providers = [p["name"] for p in profile.runtime_settings["providers"]]
    assert providers == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    trt = profile.runtime_settings["providers"][0]["options"]
    assert trt["trt_engine_cache_enable"] and trt["trt_timing_cache_enable"]
    assert [v.name for v in profile.variants] == ["int8", "int8-mixed", "fp16", "fp32"]


def test_container_profile_runs_on_this_host(onnx_fp32: ModelArtifact) -> None:
    """container-cpu's runtime settings load as they are with the real backend."""
    settings = load_target("container-cpu").runtime_settings
    backend = load_backend("onnxruntime", onnx_fp32.path, settings)
    assert backend.describe()["provider"] == "CPUExecutionProvider"
    assert backend.describe()["threads"] == 1


def test_jetson_settings_fall_back_to_cpu_here(onnx_fp32: ModelArtifact, tmp_path: Path) -> None:
    """No TensorRT or CUDA on the build host: the jetson chain still loads, on CPU."""
    settings = load_target("jetson-trt").runtime_settings
    work = tmp_path / "artifact"
    work.mkdir()
    shutil.copy(onnx_fp32.path, work / "model.onnx")
    backend = load_backend("onnxruntime", work / "model.onnx", settings)
    assert backend.describe()["provider"] == "CPUExecutionProvider"
    out = backend.run({"image": np.zeros((1, 8, 8, 1), np.float32)})
    assert out["probabilities"].shape == (1, 10)
