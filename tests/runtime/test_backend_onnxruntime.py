"""ONNX Runtime backend: provider chain and fallback, TensorRT cache options, signature, errors.

Models are built with onnx.helper (no TensorFlow), so the expected answers are plain numpy.
The sample model through this backend is compared with Keras in tests/passes/test_onnx.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from edgepack.runtime.backends import load_backend
from edgepack.runtime.backends.onnxruntime import (
    CPU,
    TENSORRT,
    OnnxRuntimeBackend,
    load,
    parse_providers,
    resolve_chain,
    tensorrt_options,
)
from edgepack.runtime.errors import BadRequestError, ModelLoadError
from edgepack.runtime.hashing import sha256_file
from edgepack.runtime.trt_cache import (
    detect_compute_capability,
    detect_tensorrt_version,
    engine_cache_key,
)

W = np.array([[1.0, -1.0, 0.5], [0.5, 2.0, -1.0], [-0.5, 0.0, 1.0], [2.0, 1.0, 0.0]], np.float32)
B = np.array([0.1, -0.2, 0.3], np.float32)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def linear_model(path: Path, dtype: str = "float32") -> Path:
    """x (batch, 4) -> logits = x @ W + B, probs = softmax(logits)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
    np_dtype = np.float16 if dtype == "float16" else np.float32
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        "linear",
        [helper.make_tensor_value_info("x", elem, ["batch", 4])],
        [
            helper.make_tensor_value_info("probs", elem, ["batch", 3]),
            helper.make_tensor_value_info("logits", elem, ["batch", 3]),
        ],
        initializer=[
            numpy_helper.from_array(W.astype(np_dtype), "w"),
            numpy_helper.from_array(B.astype(np_dtype), "b"),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return linear_model(tmp_path_factory.mktemp("ort") / "model.onnx")


def x_batch(n: int = 5) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 4)).astype(np.float32)


# -- loading, signature, run ---------------------------------------------------------


def test_signature_has_native_names_dtypes_and_dynamic_batch(model_path: Path) -> None:
    backend = load(model_path, {})
    assert backend.name == "onnxruntime"
    assert [(t.name, t.dtype, t.shape) for t in backend.signature.inputs] == [("x", "float32", (None, 4))]
    assert [(t.name, t.dtype, t.shape) for t in backend.signature.outputs] == [
        ("probs", "float32", (None, 3)),
        ("logits", "float32", (None, 3)),
    ]


def test_run_answers_by_output_name(model_path: Path) -> None:
    x = x_batch()
    out = load_backend("onnxruntime", model_path, {"threads": 1}).run({"x": x})
    assert list(out) == ["probs", "logits"]
    np.testing.assert_allclose(out["logits"], x @ W + B, atol=1e-5)
    np.testing.assert_allclose(out["probs"], softmax(x @ W + B), atol=1e-6)


def test_float16_model_reports_float16(tmp_path: Path) -> None:
    backend = load(linear_model(tmp_path / "f16.onnx", "float16"), {})
    assert backend.signature.inputs[0].dtype == "float16"
    out = backend.run({"x": x_batch().astype(np.float16)})
    assert out["probs"].dtype == np.float16


def test_threads_and_optimization_level_are_applied(model_path: Path) -> None:
    backend = load(model_path, {"threads": 2, "graph_optimization_level": "basic"})
    options = backend.session.get_session_options()
    assert options.intra_op_num_threads == 2
    assert str(options.graph_optimization_level).endswith("ORT_ENABLE_BASIC")
    info = backend.describe()
    assert info["threads"] == 2 and info["graph_optimization_level"] == "basic"


# -- provider chain -----------------------------------------------------------------


def test_missing_providers_fall_back_to_cpu_with_one_warning(
    model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """TensorRT and CUDA are not in this onnxruntime build: the chain ends on CPU, said once."""
    import onnxruntime as ort

    assert TENSORRT not in ort.get_available_providers()  # the premise of this test on this host
    settings = {
        "providers": [
            {"name": TENSORRT, "options": {"trt_fp16_enable": True, "trt_engine_cache_enable": True}},
            {"name": "CUDAExecutionProvider", "options": {"device_id": 0}},
            {"name": CPU},
        ]
    }
    with caplog.at_level(logging.INFO, logger="edgepack.runtime"):
        backend = load(model_path, settings)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "edgepack.runtime"]
    assert len(warnings) == 1
    assert TENSORRT in warnings[0].getMessage() and "CUDAExecutionProvider" in warnings[0].getMessage()
    runs = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("runs model.onnx with CPUExecutionProvider" in m for m in runs)
    info = backend.describe()
    assert info["provider"] == CPU
    assert info["providers"] == [CPU]
    assert info["unavailable_providers"] == [TENSORRT, "CUDAExecutionProvider"]
    assert info["requested_providers"] == [TENSORRT, "CUDAExecutionProvider", CPU]
    assert info["trt_engine_cache"] is None  # TensorRT absent: no cache key, no crash
    np.testing.assert_allclose(backend.run({"x": x_batch()})["logits"], x_batch() @ W + B, atol=1e-5)


def test_no_warning_when_every_provider_exists(model_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="edgepack.runtime"):
        load(model_path, {"providers": ["CPUExecutionProvider"]})
    assert not [r for r in caplog.records if r.name == "edgepack.runtime"]


def test_cpu_always_ends_the_chain() -> None:
    requested = parse_providers([CPU, {"name": "CUDAExecutionProvider"}, "OpenVINOExecutionProvider"])
    chain, dropped = resolve_chain(requested, ["CUDAExecutionProvider", CPU])
    assert [n for n, _ in chain] == ["CUDAExecutionProvider", CPU]
    assert dropped == ["OpenVINOExecutionProvider"]
    chain, _ = resolve_chain(parse_providers(["CUDAExecutionProvider"]), [CPU])
    assert [n for n, _ in chain] == [CPU]  # appended even when not listed
    chain, _ = resolve_chain(parse_providers(None), [CPU])
    assert chain == [(CPU, {})]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"providers": "CPUExecutionProvider"}, "'providers' must be a list"),
        ({"providers": [{"options": {}}]}, r"providers\[0\] must be a name"),
        ({"providers": [{"name": CPU, "options": [1]}]}, r"providers\[0\]\.options must be a mapping"),
        ({"threads": -1}, "'threads' must be an integer >= 0"),
        ({"graph_optimization_level": "max"}, "'graph_optimization_level' must be one of"),
        ({"thread": 1}, "unknown onnxruntime runtime setting"),
    ],
)
def test_bad_settings_are_load_errors(model_path: Path, settings: dict[str, object], message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load(model_path, settings)


# -- TensorRT engine cache options ---------------------------------------------------


def test_tensorrt_cache_goes_to_a_keyed_directory(model_path: Path, tmp_path: Path) -> None:
    base = tmp_path / "trt"
    options = {
        "trt_fp16_enable": True,
        "trt_int8_enable": True,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(base),
        "trt_timing_cache_enable": True,
    }
    opts, info = tensorrt_options(options, model_path)
    assert info is not None
    trt, cc = detect_tensorrt_version(), detect_compute_capability()
    key = engine_cache_key(sha256_file(model_path), trt, cc, "fp16+int8")
    assert info["key"] == key and info["precision"] == "fp16+int8"
    assert info["model_sha256"] == sha256_file(model_path)
    assert opts["trt_engine_cache_path"] == str(base / key) == info["path"]
    assert (base / key).is_dir()
    assert opts["trt_timing_cache_path"] == str(base / f"timing-trt{trt}")
    assert options["trt_engine_cache_path"] == str(base)  # the caller's settings are not changed


def test_tensorrt_cache_key_follows_the_model_and_precision(tmp_path: Path) -> None:
    one = linear_model(tmp_path / "one.onnx")
    two = linear_model(tmp_path / "two.onnx", "float16")
    options = {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(tmp_path / "trt")}
    _, a = tensorrt_options(options, one)
    _, b = tensorrt_options(options, two)
    _, c = tensorrt_options(options, one, precision="int8")
    _, again = tensorrt_options(options, one)
    assert a is not None and b is not None and c is not None and again is not None
    assert a["key"] != b["key"] != c["key"] and a["key"] != c["key"]
    assert a["key"] == again["key"]


def test_unwritable_tensorrt_cache_runs_uncached(
    model_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    options = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(blocker / "trt")}
    with caplog.at_level(logging.WARNING, logger="edgepack.runtime"):
        opts, info = tensorrt_options(options, model_path)
    assert opts["trt_engine_cache_enable"] is False
    assert info is not None and info["path"] == "" and info["key"]
    assert any("engine cache" in r.getMessage() for r in caplog.records)


def test_tensorrt_cache_off_leaves_options_alone(model_path: Path) -> None:
    opts, info = tensorrt_options({"trt_fp16_enable": True}, model_path)
    assert info is None and opts == {"trt_fp16_enable": True}


# -- errors -------------------------------------------------------------------------


def test_corrupt_model_is_a_one_line_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(ModelLoadError, match=r"onnxruntime cannot load model\.onnx") as info:
        load(bad, {})
    assert "\n" not in info.value.message


def test_unknown_operator_is_named(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("FancyWarp", ["x"], ["y"], domain="com.example")],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    onnx.save(proto, str(tmp_path / "custom.onnx"))
    with pytest.raises(ModelLoadError, match="FancyWarp"):
        load(tmp_path / "custom.onnx", {})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        OnnxRuntimeBackend(tmp_path / "nope.onnx", {})


def test_wrong_shape_is_a_bad_request(model_path: Path) -> None:
    backend = load(model_path, {})
    with pytest.raises(BadRequestError, match="onnxruntime rejected the input"):
        backend.run({"x": np.zeros((2, 5), np.float32)})
