"""The Predictor: real LiteRT models, validation of every kind of bad request, telemetry."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from runtime_helpers import Models, top1_agreement

from edgepack.runtime.backends.litert import load
from edgepack.runtime.errors import BadRequestError, ModelLoadError
from edgepack.runtime.predictor import Predictor, coerce, dequantize, quantize
from edgepack.runtime.signature import IOSignature, Quantization, TensorSpec
from edgepack.runtime.telemetry import Telemetry, TelemetryEvent

SIGNATURE = IOSignature(
    inputs=(TensorSpec("image", "float32", (None, 8, 8, 1)),),
    outputs=(TensorSpec("probabilities", "float32", (None, 10)),),
)


@pytest.fixture(scope="module")
def fp32(tflite_models: Models) -> Predictor:
    return Predictor(load(tflite_models.fp32, {"threads": 1}), SIGNATURE, ["image"], ["output_0"])


@pytest.fixture(scope="module")
def int8(tflite_models: Models) -> Predictor:
    return Predictor(load(tflite_models.int8, {"threads": 1}), SIGNATURE, ["image"], ["output_0"])


def test_fp32_answers_like_keras(fp32: Predictor, tflite_models: Models) -> None:
    out = fp32.predict({"image": tflite_models.images})
    assert list(out) == ["probabilities"]
    assert out["probabilities"].dtype == np.float32
    np.testing.assert_allclose(out["probabilities"], tflite_models.reference, atol=1e-5)


def test_int8_quantizes_input_and_dequantizes_output(int8: Predictor, tflite_models: Models) -> None:
    out = int8.predict({"image": tflite_models.images})["probabilities"]
    assert out.dtype == np.float32 and out.shape == (500, 10)
    assert top1_agreement(out, tflite_models.reference) >= 0.97
    # De-quantized softmax: within one output quantization step of summing to 1.
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=0.05)
    assert float(np.mean(np.abs(out - tflite_models.reference))) < 0.02


def test_quantize_rounds_and_clips_to_the_dtype() -> None:
    q = Quantization(scale=1 / 255, zero_point=-128)
    x = np.array([0.0, 1.0, 0.25, -1.0, 2.0], np.float32)  # 0.25 * 255 = 63.75
    assert quantize(x, "int8", q).tolist() == [-128, 127, -64, -128, 127]
    assert quantize(x, "uint8", Quantization(scale=1 / 255, zero_point=0)).tolist() == [0, 255, 64, 0, 255]
    assert quantize(np.array([3.0]), "int16", Quantization(scale=1e-4, zero_point=0)).tolist() == [30000]
    back = dequantize(np.array([-128, 0, 127], np.int8), q)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, [0.0, 128 / 255, 1.0], atol=1e-6)


def test_accepts_nested_lists_ints_and_float64(fp32: Predictor, tflite_models: Models) -> None:
    images = tflite_models.images[:2]
    expected = fp32.predict({"image": images})["probabilities"]
    from_lists = fp32.predict({"image": images.tolist()})["probabilities"]
    from_f64 = fp32.predict({"image": images.astype(np.float64)})["probabilities"]
    np.testing.assert_array_equal(from_lists, expected)
    np.testing.assert_array_equal(from_f64, expected)
    zeros = fp32.predict({"image": np.zeros((1, 8, 8, 1), np.int64)})["probabilities"]
    assert zeros.shape == (1, 10)


BAD_REQUESTS: list[tuple[str, Any, str]] = [
    ("unknown name", {"img": np.zeros((1, 8, 8, 1))}, "unknown input 'img'; the model expects 'image'"),
    ("missing input", {}, "missing input 'image'"),
    (
        "rank",
        {"image": np.zeros((1, 8, 8))},
        r"input 'image': shape \(1, 8, 8\) does not match \(None, 8, 8, 1\)",
    ),
    ("axis", {"image": np.zeros((2, 8, 7, 1))}, r"shape \(2, 8, 7, 1\) does not match \(None, 8, 8, 1\)"),
    ("no batch axis", {"image": np.zeros((8, 8, 1))}, r"missing the batch axis\?"),
    ("empty batch", {"image": np.zeros((0, 8, 8, 1))}, "input 'image': empty batch"),
    ("ragged", {"image": [[[[0.0]] * 8] * 8, [[[0.0]] * 8] * 7]}, "input 'image': not a rectangular array"),
    ("strings", {"image": [[[["a"]] * 8] * 8]}, r"input 'image': expected numbers \(float32\), got strings"),
    ("booleans", {"image": np.ones((1, 8, 8, 1), bool)}, "expected numbers .* got booleans"),
    ("nulls", {"image": [[[[None]] * 8] * 8]}, "input 'image': not an array of numbers"),
    ("NaN", {"image": np.full((1, 8, 8, 1), np.nan)}, "input 'image': contains NaN or infinity"),
    ("infinity", {"image": np.full((1, 8, 8, 1), np.inf)}, "contains NaN or infinity"),
    ("float32 overflow", {"image": np.full((1, 8, 8, 1), 1e300)}, "beyond the float32 range"),
    ("not a mapping", [np.zeros((1, 8, 8, 1))], "inputs must be a mapping"),
]


@pytest.mark.parametrize(("inputs", "match"), [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_name_the_input(int8: Predictor, inputs: Any, match: str) -> None:
    with pytest.raises(BadRequestError, match=match) as info:
        int8.predict(inputs)
    assert info.value.status == 400 and info.value.code == "bad_request"


PAIR = IOSignature(
    inputs=(TensorSpec("left", "float32", (None, 2)), TensorSpec("right", "float32", (None, 3))),
    outputs=(TensorSpec("total", "float32", (None, 1)),),
)


def _pair(tflite_models: Models) -> Predictor:
    backend = load(tflite_models.pair, {})
    native_out = backend.signature.outputs[0].name
    return Predictor(backend, PAIR, ["a", "b"], [native_out])


def test_two_inputs_map_public_to_native_names_by_position(tflite_models: Models) -> None:
    out = _pair(tflite_models).predict({"right": [[1, 1, 1], [0, 0, 2]], "left": [[1, 2], [0, 0]]})
    np.testing.assert_allclose(out["total"], [[33.0], [20.0]])


def test_inputs_must_share_one_batch_size(tflite_models: Models) -> None:
    with pytest.raises(BadRequestError, match="different batch sizes: 'left' has 2, 'right' has 1"):
        _pair(tflite_models).predict({"left": [[1, 2], [0, 0]], "right": [[1, 1, 1]]})


def test_every_model_input_needs_a_public_name(tflite_models: Models) -> None:
    one = IOSignature(inputs=(PAIR.inputs[0],), outputs=PAIR.outputs)
    backend = load(tflite_models.pair, {})
    with pytest.raises(ModelLoadError, match="the model file has 2 inputs"):
        Predictor(backend, one, ["a"], [backend.signature.outputs[0].name])


@pytest.mark.parametrize(
    ("values", "dtype", "match"),
    [
        ([1.5, 2.0], "int32", "fractional"),
        ([300], "int8", r"outside the int8 range \[-128, 127\]"),
        ([-1], "uint8", "outside the uint8 range"),
        ([1], "bool", "expected booleans"),
        ([True], "int64", "got booleans"),
        (["1"], "int64", "got strings"),
    ],
)
def test_coerce_refuses_lossy_conversions(values: list[Any], dtype: str, match: str) -> None:
    with pytest.raises(BadRequestError, match=match):
        coerce("x", np.asarray(values), dtype)


def test_coerce_keeps_whole_floats_for_integer_inputs() -> None:
    out = coerce("x", np.asarray([1.0, -2.0]), "int32")
    assert out.dtype == np.int32 and out.tolist() == [1, -2]


def test_native_names_are_checked_at_construction(tflite_models: Models) -> None:
    backend = load(tflite_models.fp32, {})
    with pytest.raises(ModelLoadError, match="'probabilities'.*not in the model file; it has 'output_0'"):
        Predictor(backend, SIGNATURE)  # no native names: the public ones must then exist


def test_int_model_tensor_without_quantization_cannot_take_float(tflite_models: Models) -> None:
    int_signature = IOSignature(
        inputs=(TensorSpec("image", "int64", (None, 8, 8, 1)),), outputs=SIGNATURE.outputs
    )
    backend = load(tflite_models.fp32, {})
    with pytest.raises(ModelLoadError, match="public dtype int64 cannot map"):
        Predictor(backend, int_signature, ["image"], ["output_0"])


def test_telemetry_inference_and_error_events(tflite_models: Models) -> None:
    events: list[TelemetryEvent] = []
    telemetry = Telemetry([events.append])
    predictor = Predictor(load(tflite_models.int8, {}), SIGNATURE, ["image"], ["output_0"], telemetry)
    predictor.predict({"image": tflite_models.images[:3]})
    with pytest.raises(BadRequestError):
        predictor.predict({"img": tflite_models.images[:3]})
    inference, error = events
    assert inference.name == "inference"
    assert inference.fields["batch_size"] == 3 and inference.fields["backend"] == "litert"
    assert inference.fields["latency_ms"] >= inference.fields["run_ms"] > 0
    assert error.name == "error"
    assert error.fields["code"] == "bad_request" and "'img'" in error.fields["message"]
    assert error.fields["stage"] == "validate"


def test_a_failing_sink_never_breaks_inference(tflite_models: Models) -> None:
    seen: list[str] = []

    def broken(event: TelemetryEvent) -> None:
        raise RuntimeError("sink down")

    telemetry = Telemetry([broken, lambda e: seen.append(e.name)])
    predictor = Predictor(load(tflite_models.fp32, {}), SIGNATURE, ["image"], ["output_0"], telemetry)
    out = predictor.predict({"image": tflite_models.images[:2]})
    assert out["probabilities"].shape == (2, 10)
    assert telemetry.dropped == 1 and seen == ["inference"]


def test_from_artifact_loads_and_reports(fp32_artifact: Path, tflite_models: Models) -> None:
    events: list[TelemetryEvent] = []
    predictor = Predictor.from_artifact(fp32_artifact, Telemetry([events.append]))
    assert predictor.signature.input_names == ("image",)
    assert predictor.manifest is not None and predictor.manifest.version == "1.0.0"
    (loaded,) = events
    assert loaded.name == "model_loaded"
    assert loaded.fields["load_ms"] > 0 and loaded.fields["backend"] == "litert"
    assert loaded.fields["runtime"]["library"] == "ai-edge-litert 2.3.0"
    out = predictor.predict({"image": tflite_models.images[:5]})
    np.testing.assert_allclose(out["probabilities"], tflite_models.reference[:5], atol=1e-5)


def test_from_artifact_refuses_a_model_path_outside_the_artifact(fp32_artifact: Path, tmp_path: Path) -> None:
    manifest = json.loads((fp32_artifact / "edgepack.json").read_text())
    manifest["model"]["file"] = "../../outside.tflite"
    (tmp_path / "edgepack.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="outside the artifact"):
        Predictor.from_artifact(tmp_path)


def test_from_artifact_without_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="cannot read manifest"):
        Predictor.from_artifact(tmp_path)


def test_latency_fields_are_numbers(fp32: Predictor, tflite_models: Models) -> None:
    events: list[TelemetryEvent] = []
    fp32.telemetry.add_sink(events.append)
    fp32.predict({"image": tflite_models.images[:1]})
    assert all(math.isfinite(events[-1].fields[k]) for k in ("latency_ms", "run_ms"))
