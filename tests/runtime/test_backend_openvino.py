"""OpenVINO backend: device choice and fallback, precision, dynamic batch, cache dir, errors.

IRs are built from onnx.helper graphs (no TensorFlow), so expected answers are plain numpy.
The sample model through this backend is compared with Keras in tests/passes/test_openvino.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edgepack.runtime.backends import load_backend
from edgepack.runtime.backends.openvino import OpenVinoBackend, load, resolve_device
from edgepack.runtime.errors import BadRequestError, ModelLoadError

W = np.array([[1.0, -1.0, 0.5], [0.5, 2.0, -1.0], [-0.5, 0.0, 1.0], [2.0, 1.0, 0.0]], np.float32)
B = np.array([0.1, -0.2, 0.3], np.float32)
F32 = {"device": "CPU", "inference_precision": "f32"}


def linear_ir(dest: Path, batch: int | str = 1) -> Path:
    """IR of x (batch, 4) -> logits = x @ W + B, probs = softmax(logits); static batch 1 by default."""
    import onnx
    import openvino as ov
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, 3]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 3]),
        ],
        initializer=[numpy_helper.from_array(W, "w"), numpy_helper.from_array(B, "b")],
    )
    dest.mkdir(parents=True, exist_ok=True)
    onnx_path = dest / "linear.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(onnx_path))
    xml = dest / "model.xml"
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    return xml


@pytest.fixture(scope="module")
def ir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return linear_ir(tmp_path_factory.mktemp("ov"))


def x_batch(n: int = 5) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 4)).astype(np.float32)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# -- loading, signature, run ---------------------------------------------------------


def test_static_batch_is_made_dynamic(ir: Path) -> None:
    backend = load(ir, F32)
    assert backend.name == "openvino"
    assert [(t.name, t.dtype, t.shape) for t in backend.signature.inputs] == [("x", "float32", (None, 4))]
    assert [(t.name, t.shape) for t in backend.signature.outputs] == [
        ("probs", (None, 3)),
        ("logits", (None, 3)),
    ]
    x = x_batch(7)
    out = backend.run({"x": x})
    assert list(out) == ["probs", "logits"]
    np.testing.assert_allclose(out["logits"], x @ W + B, atol=1e-5)
    np.testing.assert_allclose(out["probs"], softmax(x @ W + B), atol=1e-6)


def test_batch_setting_keep_and_fixed(ir: Path) -> None:
    assert load(ir, {**F32, "batch": "keep"}).signature.inputs[0].shape == (1, 4)
    fixed = load(ir, {**F32, "batch": 3})
    assert fixed.signature.inputs[0].shape == (3, 4)
    with pytest.raises(ModelLoadError, match="'batch' must be"):
        load(ir, {**F32, "batch": "many"})


def test_f32_precision_is_applied_and_reported(ir: Path) -> None:
    backend = load_backend("openvino", ir, {"device": "CPU", "inference_precision": "f32", "threads": 1})
    assert isinstance(backend, OpenVinoBackend)
    info = backend.describe()
    assert info["inference_precision"] == "f32"
    assert info["execution_devices"] == ["CPU"]
    assert info["threads"] == 1
    assert info["version"]
    assert backend.compiled.get_property("INFERENCE_NUM_THREADS") == 1


def test_auto_device_reports_the_requested_precision(ir: Path) -> None:
    backend = load(ir, {"device": "AUTO", "performance_hint": "latency"})
    info = backend.describe()
    assert info["requested_device"] == "AUTO" and info["device"] == "AUTO"
    assert info["execution_devices"] == ["CPU"]
    assert info["inference_precision"] == "f32"  # the default setting, since AUTO cannot be asked
    assert info["performance_hint"] == "LATENCY"


# -- devices ------------------------------------------------------------------------


def test_missing_device_falls_back_to_cpu_with_a_warning(ir: Path, caplog: pytest.LogCaptureFixture) -> None:
    import openvino as ov

    assert not any(d.startswith("GPU") for d in ov.Core().available_devices)  # premise on this host
    with caplog.at_level(logging.WARNING, logger="edgepack.runtime"):
        backend = load(ir, {"device": "GPU"})
    warnings = [r.getMessage() for r in caplog.records if r.name == "edgepack.runtime"]
    assert len(warnings) == 1 and "GPU" in warnings[0] and "running on CPU" in warnings[0]
    info = backend.describe()
    assert info["requested_device"] == "GPU" and info["device"] == "CPU"
    np.testing.assert_allclose(backend.run({"x": x_batch()})["logits"], x_batch() @ W + B, atol=1e-5)


def test_strict_device_refuses_to_fall_back(ir: Path) -> None:
    with pytest.raises(ModelLoadError, match="OpenVINO device NPU is not available on this host"):
        load(ir, {"device": "NPU", "device_fallback": False})


def test_resolve_device() -> None:
    available = ["CPU", "GPU.0", "GPU.1"]
    assert resolve_device("auto", available) == ("AUTO", [])
    assert resolve_device("GPU", available) == ("GPU", [])
    assert resolve_device("GPU.1", available) == ("GPU.1", [])
    assert resolve_device("NPU", available) == ("CPU", ["NPU"])
    assert resolve_device("AUTO:NPU,GPU,CPU", available) == ("AUTO:GPU,CPU", ["NPU"])
    assert resolve_device("AUTO:NPU", ["CPU"]) == ("CPU", ["NPU"])


# -- settings and files -------------------------------------------------------------


def test_cache_dir_holds_the_compiled_model(ir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "ov-cache"
    backend = load(ir, {**F32, "cache_dir": str(cache)})
    assert backend.describe()["cache_dir"] == str(cache)
    assert any(cache.iterdir())  # OpenVINO wrote the compiled blob
    again = load(ir, {**F32, "cache_dir": str(cache)})  # a second load reads it
    np.testing.assert_allclose(again.run({"x": x_batch()})["logits"], x_batch() @ W + B, atol=1e-5)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"inference_precision": "fp64"}, "'inference_precision' must be one of"),
        ({"performance_hint": "FASTEST"}, "'performance_hint' must be one of"),
        ({"threads": "four"}, "'threads' must be an integer"),
        ({"inference_precison": "f32"}, "unknown openvino runtime setting"),
    ],
)
def test_bad_settings_are_load_errors(ir: Path, settings: dict[str, object], message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load(ir, settings)


def test_missing_weights_file(ir: Path, tmp_path: Path) -> None:
    (tmp_path / "model.xml").write_bytes(ir.read_bytes())
    with pytest.raises(ModelLoadError, match=r"model\.xml \(\+ \.bin\) not found"):
        OpenVinoBackend(tmp_path / "model.xml", {})


def test_corrupt_ir_is_a_load_error(tmp_path: Path) -> None:
    (tmp_path / "model.xml").write_text("<net><layers>broken")
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"openvino cannot read model\.xml") as info:
        load(tmp_path / "model.xml", {})
    assert "\n" not in info.value.message


def test_wrong_shape_is_a_bad_request(ir: Path) -> None:
    backend = load(ir, F32)
    with pytest.raises(BadRequestError, match="openvino rejected the input"):
        backend.run({"x": np.zeros((2, 5), np.float32)})
