"""Keras sources: the public signature, predict against Keras itself, renames, .h5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgepack.errors import ConfigError, DataError
from edgepack.model.base import Batch
from edgepack.model.keras import KerasModelSource
from edgepack.model.loader import load_model
from edgepack.model.tf_env import import_keras
from edgepack.runtime.signature import TensorSpec


def test_digits_signature_names_dtypes_and_dynamic_batch(digits_source: KerasModelSource) -> None:
    artifact = digits_source.artifact
    assert artifact.format == "keras"
    assert artifact.precision == "fp32"
    assert artifact.signature.inputs == (TensorSpec("image", "float32", (None, 8, 8, 1)),)
    assert artifact.signature.outputs == (TensorSpec("probabilities", "float32", (None, 10)),)
    assert artifact.signature.inputs[0].dynamic_axes == (0,)
    assert artifact.native_inputs == ()
    assert artifact.native_outputs == ()
    assert artifact.details["framework"] == "keras"
    assert artifact.details["keras_version"].startswith("3.")
    assert artifact.details["file_format"] == "keras"


def test_predict_matches_keras_itself(
    keras_model_path: Path, digits_source: KerasModelSource, digits_batch: Batch
) -> None:
    model = import_keras().saving.load_model(keras_model_path, compile=False)
    expected = np.asarray(model(digits_batch["image"], training=False))
    out = digits_source.predict(digits_batch)
    assert list(out) == ["probabilities"]
    assert out["probabilities"].dtype == np.float32
    assert out["probabilities"].shape == (40, 10)
    np.testing.assert_allclose(out["probabilities"], expected, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("n", [1, 7])
def test_any_batch_size_and_float64_input(
    digits_source: KerasModelSource, digits_batch: Batch, n: int
) -> None:
    full = digits_source.predict(digits_batch)["probabilities"]
    out = digits_source.predict({"image": digits_batch["image"][:n].astype(np.float64)})
    assert out["probabilities"].shape == (n, 10)
    np.testing.assert_allclose(out["probabilities"], full[:n], atol=1e-5)


def test_multi_io_names_and_order(multi_io_source: KerasModelSource) -> None:
    sig = multi_io_source.artifact.signature
    assert sig.input_names == ("pixels", "meta")
    assert sig.output_names == ("class_probs", "score")
    assert [t.shape for t in sig.inputs] == [(None, 4, 4, 1), (None, 3)]
    assert [t.shape for t in sig.outputs] == [(None, 5), (None, 1)]
    assert {t.dtype for t in (*sig.inputs, *sig.outputs)} == {"float32"}


def test_multi_io_predict_by_name_in_any_order(
    multi_io_keras_path: Path, multi_io_source: KerasModelSource, multi_io_batch: Batch
) -> None:
    model = import_keras().saving.load_model(multi_io_keras_path, compile=False)
    class_probs, score = model([multi_io_batch["pixels"], multi_io_batch["meta"]], training=False)
    reversed_feed = {"meta": multi_io_batch["meta"], "pixels": multi_io_batch["pixels"]}
    out = multi_io_source.predict(reversed_feed)
    assert list(out) == ["class_probs", "score"]
    np.testing.assert_allclose(out["class_probs"], np.asarray(class_probs), atol=1e-6)
    np.testing.assert_allclose(out["score"], np.asarray(score), atol=1e-6)


def test_renames_replace_public_names_and_keep_native(
    multi_io_keras_path: Path, multi_io_batch: Batch, multi_io_reference: Batch
) -> None:
    source = load_model(multi_io_keras_path, input_names=["img", "extra"], output_names=["probs", "quality"])
    artifact = source.artifact
    assert artifact.signature.input_names == ("img", "extra")
    assert artifact.signature.output_names == ("probs", "quality")
    assert artifact.signature.inputs[0].shape == (None, 4, 4, 1)  # renamed by position, shape kept
    assert artifact.native_inputs == ("pixels", "meta")
    assert artifact.native_outputs == ("class_probs", "score")
    out = source.predict({"img": multi_io_batch["pixels"], "extra": multi_io_batch["meta"]})
    assert list(out) == ["probs", "quality"]
    np.testing.assert_allclose(out["probs"], multi_io_reference["class_probs"], atol=1e-6)
    np.testing.assert_allclose(out["quality"], multi_io_reference["score"], atol=1e-6)


def test_renaming_only_outputs(keras_model_path: Path) -> None:
    artifact = load_model(keras_model_path, output_names=["scores"]).artifact
    assert artifact.signature.input_names == ("image",)
    assert artifact.native_inputs == ()
    assert artifact.signature.output_names == ("scores",)
    assert artifact.native_outputs == ("probabilities",)


@pytest.mark.parametrize(
    ("inputs", "outputs", "field"),
    [
        (["a"], None, "model.inputs"),
        (["a", "b", "c"], None, "model.inputs"),
        (None, ["only_one"], "model.outputs"),
        (["same", "same"], None, "model.inputs"),
    ],
)
def test_rename_that_does_not_fit_is_a_config_error(
    multi_io_keras_path: Path, inputs: list[str] | None, outputs: list[str] | None, field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_model(multi_io_keras_path, input_names=inputs, output_names=outputs)
    assert info.value.where == field
    assert "\n" not in info.value.hint()


def test_rename_count_error_names_the_model_and_its_tensors(multi_io_keras_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"1 name\(s\) but multi_io.keras has 2 inputs \(pixels, meta\)"):
        load_model(multi_io_keras_path, input_names=["a"])


def test_h5_file_loads_with_the_same_signature_and_outputs(
    digits_h5: Path, digits_source: KerasModelSource, digits_batch: Batch, digits_reference: Batch
) -> None:
    source = load_model(digits_h5)
    assert isinstance(source, KerasModelSource)
    assert source.artifact.format == "keras"
    assert source.artifact.details["file_format"] == "h5"
    assert source.artifact.signature == digits_source.artifact.signature
    np.testing.assert_allclose(
        source.predict(digits_batch)["probabilities"], digits_reference["probabilities"], atol=1e-6
    )


def test_predict_rejects_missing_and_unknown_inputs(digits_source: KerasModelSource) -> None:
    with pytest.raises(DataError, match=r"missing image; unknown img.*takes image"):
        digits_source.predict({"img": np.zeros((1, 8, 8, 1), np.float32)})


def test_sequential_model_names_come_from_its_layers(tmp_path: Path) -> None:
    keras = import_keras()
    model = keras.Sequential(
        [keras.Input((3,), name="features"), keras.layers.Dense(2, name="logits")], name="seq"
    )
    path = tmp_path / "seq.keras"
    model.save(path)
    source = load_model(path)
    assert source.artifact.signature.input_names == ("features",)
    assert source.artifact.signature.output_names == ("logits",)
    out = source.predict({"features": np.ones((4, 3), np.float32)})
    np.testing.assert_allclose(out["logits"], np.asarray(model(np.ones((4, 3), np.float32))), atol=1e-6)
