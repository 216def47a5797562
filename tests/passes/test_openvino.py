"""OpenVINO passes on the sample model, with OpenVINO's converter, NNCF and OpenVINO's CPU plugin.

Each IR is built once per session. Measured on the build machine (2026-11), f32 inference:
fp32 IR vs Keras max abs error 1.1e-6 (bf16, OpenVINO's default on this CPU: 1.1e-2);
fp16-compressed weights 1.1e-3; NNCF int8 top-1 agreement 1.0, accuracy 0.978 (Keras 0.978).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from passes_helpers import gate, pass_runner

from edgepack.errors import ConfigError, DataError, UnsupportedOpError
from edgepack.model.base import Batch, ModelArtifact, ModelSource
from edgepack.model.loader import load_model
from edgepack.passes import PassContext, get_pass
from edgepack.runtime.backends import load_backend
from edgepack.runtime.predictor import Predictor
from edgepack.runtime.signature import IOSignature, TensorSpec
from edgepack.targets import load_target

TARGET = "test-openvino"
F32_TOLERANCE = 1e-4  # measured 1.1e-6
FP16_WEIGHTS_TOLERANCE = 5e-3  # measured 1.1e-3
# What the artifact runs: the intel-openvino profile's settings, on the CPU of this host.
CPU_F32 = {"device": "CPU", "inference_precision": "f32", "threads": 1}


run_pass = pass_runner(TARGET)


def predict_with_openvino(model: ModelArtifact, inputs: Batch, settings: dict[str, Any] = CPU_F32) -> Batch:
    backend = load_backend("openvino", model.path, settings)
    return Predictor(backend, model.signature, model.native_inputs, model.native_outputs).predict(inputs)


def ir_bytes(model: ModelArtifact) -> int:
    return sum(p.stat().st_size for p in model.files())


@pytest.fixture(scope="session")
def calibration(calibration_npz: Path) -> Callable[[], Iterator[Batch]]:
    images = np.load(calibration_npz)["image"]
    return lambda: iter([{"image": images[:64]}, {"image": images[64:]}])


@pytest.fixture(scope="session")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("openvino-passes")


@pytest.fixture(scope="session")
def ir_fp32(digits: ModelSource, work: Path) -> ModelArtifact:
    return run_pass("openvino-convert", digits.artifact, {}, work / "fp32")


@pytest.fixture(scope="session")
def ir_int8(ir_fp32: ModelArtifact, work: Path, calibration: Callable[[], Iterator[Batch]]) -> ModelArtifact:
    config = load_target("intel-openvino").variants[0].passes[1].config
    return run_pass("openvino-quantize", ir_fp32, config, work / "int8", calibration)


# -- openvino-convert ---------------------------------------------------------------


def test_convert_writes_ir_with_public_names(ir_fp32: ModelArtifact) -> None:
    import openvino as ov

    assert ir_fp32.format == "openvino" and ir_fp32.path.name == "model.xml"
    assert ir_fp32.path.with_suffix(".bin").is_file()
    assert ir_fp32.precision == "fp32" and ir_fp32.details["compress_to_fp16"] is False
    model = ov.Core().read_model(str(ir_fp32.path))
    assert [p.get_any_name() for p in model.inputs] == ["image"]
    assert [p.get_any_name() for p in model.outputs] == ["probabilities"]
    assert model.inputs[0].get_partial_shape()[0].is_dynamic  # dynamic batch kept


def test_fp32_ir_answers_like_keras_in_f32(
    ir_fp32: ModelArtifact, validation: tuple[Batch, np.ndarray], keras_reference: Batch, record_property: Any
) -> None:
    inputs, labels = validation
    backend = load_backend("openvino", ir_fp32.path, CPU_F32)
    assert backend.describe()["inference_precision"] == "f32"
    report = gate(keras_reference, predict_with_openvino(ir_fp32, inputs), labels)
    record_property("openvino_fp32_max_abs_error", report.metrics.max_abs_error)
    assert report.metrics.max_abs_error < F32_TOLERANCE
    assert report.passed, report.failures


def test_device_default_precision_is_measured_not_assumed(
    ir_fp32: ModelArtifact, validation: tuple[Batch, np.ndarray], keras_reference: Batch, record_property: Any
) -> None:
    """With the device's own precision (bf16 on AMX/AVX512-BF16 CPUs) the error is what it is: record it."""
    settings = {"device": "CPU", "inference_precision": None}
    backend = load_backend("openvino", ir_fp32.path, settings)
    precision = backend.describe()["inference_precision"]
    report = gate(keras_reference, predict_with_openvino(ir_fp32, validation[0], settings), validation[1])
    record_property("openvino_device_default_precision", precision)
    record_property("openvino_device_default_max_abs_error", report.metrics.max_abs_error)
    assert precision in ("f32", "bf16", "f16")
    if precision == "f32":
        assert report.metrics.max_abs_error < F32_TOLERANCE


def test_fp16_compressed_weights(
    ir_fp32: ModelArtifact,
    digits: ModelSource,
    validation: tuple[Batch, np.ndarray],
    keras_reference: Batch,
    tmp_path: Path,
    record_property: Any,
) -> None:
    model = run_pass("openvino-convert", digits.artifact, {"compress_to_fp16": True}, tmp_path)
    assert model.precision == "fp16"
    report = gate(keras_reference, predict_with_openvino(model, validation[0]), validation[1])
    bin_ratio = (
        model.path.with_suffix(".bin").stat().st_size / ir_fp32.path.with_suffix(".bin").stat().st_size
    )
    record_property("openvino_fp16_max_abs_error", report.metrics.max_abs_error)
    record_property("openvino_fp16_bin_ratio", round(bin_ratio, 3))
    record_property("openvino_fp16_ir_ratio", round(ir_bytes(model) / ir_bytes(ir_fp32), 3))
    assert report.metrics.max_abs_error < FP16_WEIGHTS_TOLERANCE
    assert report.passed, report.failures
    assert bin_ratio < 0.55


def test_convert_from_onnx(digits: ModelSource, keras_reference: Batch, tmp_path: Path) -> None:
    onnx_model = get_pass("onnx-convert").run(
        digits.artifact, get_pass("onnx-convert").parse_config({}, "c"), PassContext(tmp_path, TARGET)
    )
    ir = run_pass("openvino-convert", onnx_model, {}, tmp_path / "ir")
    assert ir.details["source_format"] == "onnx"
    x = {"image": np.load(Path(digits.artifact.path).parent.parent / "data" / "validation.npz")["image"][:50]}
    got = predict_with_openvino(ir, x)
    np.testing.assert_allclose(
        got["probabilities"], keras_reference["probabilities"][:50], atol=F32_TOLERANCE
    )


def test_onnx_with_other_native_names_gets_public_names(tmp_path: Path) -> None:
    """An ONNX file whose tensors are named ``x``/``y`` becomes an IR named like the config says."""
    import onnx
    import openvino as ov
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "r.onnx"))
    sig = IOSignature(
        inputs=(TensorSpec("features", "float32", (None, 4)),),
        outputs=(TensorSpec("positive", "float32", (None, 4)),),
    )
    model = ModelArtifact(
        path=tmp_path / "r.onnx", format="onnx", signature=sig, native_inputs=("x",), native_outputs=("y",)
    )
    ir = run_pass("openvino-convert", model, {}, tmp_path / "ir")
    assert ir.native_inputs == () and ir.native_outputs == ()
    read = ov.Core().read_model(str(ir.path))
    assert [p.get_any_name() for p in read.inputs] == ["features"]
    assert [p.get_any_name() for p in read.outputs] == ["positive"]
    out = predict_with_openvino(ir, {"features": np.array([[-1, 2, -3, 4]], np.float32)})
    np.testing.assert_array_equal(out["positive"], [[0, 2, 0, 4]])


def test_multi_io_keeps_names_and_order(multi_io_keras_path: Path, tmp_path: Path) -> None:
    source = load_model(multi_io_keras_path)
    assert source.artifact.signature.output_names == ("class_probs", "score")
    ir = run_pass("openvino-convert", source.artifact, {}, tmp_path)
    backend = load_backend("openvino", ir.path, CPU_F32)
    assert backend.signature.input_names == source.artifact.signature.input_names == ("pixels", "meta")
    assert backend.signature.output_names == source.artifact.signature.output_names
    rng = np.random.default_rng(2)
    batch = {
        "pixels": rng.random((5, 4, 4, 1), dtype=np.float32),
        "meta": rng.random((5, 3), dtype=np.float32),
    }
    expected = source.predict(batch)
    got = predict_with_openvino(ir, batch)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=F32_TOLERANCE)


def test_config_renames_become_the_ir_names(multi_io_keras_path: Path, tmp_path: Path) -> None:
    source = load_model(multi_io_keras_path, input_names=["picture", "info"], output_names=["probs", "value"])
    ir = run_pass("openvino-convert", source.artifact, {}, tmp_path)
    backend = load_backend("openvino", ir.path, CPU_F32)
    assert backend.signature.input_names == ("picture", "info")
    assert backend.signature.output_names == ("probs", "value")
    rng = np.random.default_rng(4)
    batch = {
        "picture": rng.random((3, 4, 4, 1), dtype=np.float32),
        "info": rng.random((3, 3), dtype=np.float32),
    }
    expected = source.predict(batch)
    got = predict_with_openvino(ir, batch)
    for name in ("probs", "value"):
        np.testing.assert_allclose(got[name], expected[name], atol=F32_TOLERANCE)


def test_custom_domain_onnx_op_is_named(custom_op_onnx: ModelArtifact, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOpError) as info:
        run_pass("openvino-convert", custom_op_onnx, {}, tmp_path / "ir")
    assert info.value.op == "com.example.FancyWarp"
    assert info.value.hint() == (
        f"target {TARGET}: operation com.example.FancyWarp is not supported by the converter "
        "(OpenVINO model conversion)"
    )


def test_tf_op_openvino_cannot_convert_is_named(sqrtm_savedmodel: ModelSource, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOpError) as info:
        run_pass("openvino-convert", sqrtm_savedmodel.artifact, {}, tmp_path / "ir")
    assert info.value.op == "MatrixSquareRoot"
    assert "\n" not in info.value.hint()


# -- openvino-quantize --------------------------------------------------------------


def test_nncf_int8_keeps_accuracy(
    ir_fp32: ModelArtifact,
    ir_int8: ModelArtifact,
    validation: tuple[Batch, np.ndarray],
    keras_reference: Batch,
    record_property: Any,
) -> None:
    import openvino as ov

    ops = {op.get_type_name() for op in ov.Core().read_model(str(ir_int8.path)).get_ops()}
    assert "FakeQuantize" in ops
    assert ir_int8.precision == "int8"
    assert ir_int8.details["quantization"]["preset"] == "performance"
    assert ir_int8.details["quantization"]["subset_size"] == 200  # every calibration sample
    inputs, labels = validation
    report = gate(keras_reference, predict_with_openvino(ir_int8, inputs), labels)
    m = report.metrics
    assert m.top1_agreement is not None and m.top1_agreement >= 0.98
    assert m.accuracy_drop is not None and m.accuracy_drop <= 0.01
    assert report.passed, report.failures
    bin_ratio = (
        ir_int8.path.with_suffix(".bin").stat().st_size / ir_fp32.path.with_suffix(".bin").stat().st_size
    )
    ir_ratio = ir_bytes(ir_int8) / ir_bytes(ir_fp32)
    record_property("openvino_int8_top1_agreement", m.top1_agreement)
    record_property("openvino_int8_accuracy_drop", m.accuracy_drop)
    record_property("openvino_int8_bin_ratio", round(bin_ratio, 3))
    record_property("openvino_int8_ir_ratio", round(ir_ratio, 3))
    # Weights (.bin) are int8: ~0.26x. The .xml describes every FakeQuantize in text, ~40 KB
    # here, as much as the weights of this small model: the pair is ~0.44x.
    assert bin_ratio <= 0.30
    assert ir_ratio <= 0.50


def test_quantize_without_calibration_names_the_target(ir_fp32: ModelArtifact, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"target {TARGET}: openvino-quantize needs calibration data"):
        run_pass("openvino-quantize", ir_fp32, {}, tmp_path)


def test_quantize_config_translates_to_nncf_kwargs() -> None:
    import nncf

    from edgepack.passes.openvino import OpenVinoQuantizeConfig, to_nncf_kwargs

    kwargs = to_nncf_kwargs(
        OpenVinoQuantizeConfig(
            preset="mixed", subset_size=50, fast_bias_correction=False, model_type="transformer"
        )
    )
    assert kwargs == {
        "preset": nncf.QuantizationPreset.MIXED,
        "subset_size": 50,
        "fast_bias_correction": False,
        "target_device": nncf.TargetDevice.ANY,
        "model_type": nncf.ModelType.TRANSFORMER,
    }
    assert "model_type" not in to_nncf_kwargs(OpenVinoQuantizeConfig())


def test_calibration_is_split_into_single_samples_up_to_the_subset() -> None:
    from edgepack.passes.openvino import calibration_samples

    images = np.arange(10 * 4, dtype=np.float64).reshape(10, 4)
    items = calibration_samples(
        lambda: iter([{"x": images[:6]}, {"x": images[6:]}]), ("x",), {"x": np.float32}, 8
    )
    assert len(items) == 8
    assert all(item["x"].shape == (1, 4) and item["x"].dtype == np.float32 for item in items)
    np.testing.assert_array_equal(items[7]["x"][0], images[7])
    with pytest.raises(DataError, match="lacks input 'x'"):
        calibration_samples(lambda: iter([{"y": images}]), ("x",), {}, 8)


def test_quantize_config_rejects_unknown_preset() -> None:
    with pytest.raises(ConfigError, match=r"openvino-quantize\.preset"):
        get_pass("openvino-quantize").parse_config({"preset": "fastest"}, "openvino-quantize")


def test_intel_profile_settings_load_here(ir_int8: ModelArtifact, tmp_path: Path) -> None:
    """intel-openvino's runtime settings as shipped (AUTO, f32, LATENCY, a cache dir) run on this host."""
    settings = {**load_target("intel-openvino").runtime_settings, "cache_dir": str(tmp_path / "cache")}
    backend = load_backend("openvino", ir_int8.path, settings)
    info = backend.describe()
    assert info["requested_device"] == "AUTO"
    assert info["execution_devices"] == ["CPU"]
    assert info["inference_precision"] == "f32"
    assert info["performance_hint"] == "LATENCY"
    out = backend.run({"image": np.zeros((2, 8, 8, 1), np.float32)})
    assert out["probabilities"].shape == (2, 10)
