"""The LiteRT backend on real converted models."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from runtime_helpers import Models

from edgepack.runtime.backends import load_backend
from edgepack.runtime.backends.litert import load
from edgepack.runtime.errors import BackendUnavailableError, BadRequestError, ModelLoadError


def test_fp32_signature_uses_the_serving_default_keys(tflite_models: Models) -> None:
    backend = load(tflite_models.fp32, {"threads": 1})
    (image,) = backend.signature.inputs
    (probabilities,) = backend.signature.outputs
    assert (image.name, image.dtype, image.shape, image.quantization) == (
        "image",
        "float32",
        (None, 8, 8, 1),
        None,
    )
    assert (probabilities.name, probabilities.dtype, probabilities.shape) == (
        "output_0",
        "float32",
        (None, 10),
    )


def test_int8_signature_carries_quantization(tflite_models: Models) -> None:
    backend = load(tflite_models.int8, {})
    (image,) = backend.signature.inputs
    (probabilities,) = backend.signature.outputs
    assert image.dtype == "int8" and probabilities.dtype == "int8"
    assert image.quantization is not None
    assert image.quantization.scale == pytest.approx(1 / 255) and image.quantization.zero_point == -128
    assert probabilities.quantization is not None
    assert probabilities.quantization.zero_point == -128


def test_describe_names_library_and_threads(tflite_models: Models) -> None:
    described = load_backend("litert", tflite_models.fp32, {"threads": 2}).describe()
    assert described["backend"] == "litert"
    assert described["library"] == "ai-edge-litert 2.3.0"
    assert described["threads"] == 2


def test_any_batch_size_on_a_dynamic_batch_model(tflite_models: Models) -> None:
    backend = load(tflite_models.fp32, {"threads": 1})
    for n in (1, 7, 7, 3, 500, 1):  # grows, repeats, shrinks
        out = backend.run({"image": tflite_models.images[:n]})["output_0"]
        assert out.shape == (n, 10)
        np.testing.assert_allclose(out, tflite_models.reference[:n], atol=1e-5)
    assert backend.describe()["batching"] == "resize"


def test_batch_fixed_at_one_runs_row_by_row_when_the_graph_cannot_resize(tflite_models: Models) -> None:
    backend = load(tflite_models.fixed1, {})
    assert backend.signature.inputs[0].shape == (1, 8, 8, 1)
    out = backend.run({"image": tflite_models.images[:4]})["output_0"]
    np.testing.assert_allclose(out, tflite_models.reference[:4], atol=1e-5)
    assert backend.describe()["batching"] == "rows"
    single = backend.run({"image": tflite_models.images[4:5]})["output_0"]
    np.testing.assert_allclose(single, tflite_models.reference[4:5], atol=1e-5)


def test_run_refuses_wrong_dtype_and_shape(tflite_models: Models) -> None:
    backend = load(tflite_models.int8, {})
    with pytest.raises(BadRequestError, match="'image': dtype float32 is not the model's int8"):
        backend.run({"image": tflite_models.images[:1]})
    with pytest.raises(BadRequestError, match=r"shape \(1, 8, 8\) does not fit"):
        backend.run({"image": np.zeros((1, 8, 8), np.int8)})
    with pytest.raises(BadRequestError, match="model inputs are"):
        backend.run({"img": np.zeros((1, 8, 8, 1), np.int8)})


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"threads": 0}, "positive integer"),
        ({"threads": "2"}, "positive integer"),
        ({"threads": True}, "positive integer"),
        ({"thread": 1}, "unknown litert setting 'thread'"),
    ],
)
def test_bad_settings_are_refused(tflite_models: Models, settings: dict[str, object], match: str) -> None:
    with pytest.raises(ModelLoadError, match=match):
        load(tflite_models.fp32, settings)


def test_missing_and_corrupt_model_files(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load(tmp_path / "nope.tflite", {})
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"not a flatbuffer" * 8)
    with pytest.raises(ModelLoadError, match="corrupt.tflite"):
        load(corrupt, {})


def test_neither_runtime_package_importable_names_both(
    tflite_models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules is how the import system itself spells "not importable".
    for name in (
        "ai_edge_litert",
        "ai_edge_litert.interpreter",
        "tflite_runtime",
        "tflite_runtime.interpreter",
    ):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(BackendUnavailableError) as info:
        load(tflite_models.fp32, {})
    assert "ai-edge-litert" in info.value.message and "tflite-runtime" in info.value.message
    assert info.value.status == 500


def test_unknown_backend_name(tflite_models: Models) -> None:
    with pytest.raises(ModelLoadError, match="unknown backend 'tensorrt'"):
        load_backend("tensorrt", tflite_models.fp32, {})
