"""SavedModel sources (from ``keras.Model.export``): the serving signature, predict, renames."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgepack.model.base import Batch
from edgepack.model.loader import load_model
from edgepack.model.savedmodel import SavedModelSource
from edgepack.runtime.signature import TensorSpec


def test_digits_signature(digits_savedmodel: Path) -> None:
    source = load_model(digits_savedmodel)
    assert isinstance(source, SavedModelSource)
    artifact = source.artifact
    assert artifact.format == "savedmodel"
    assert artifact.path == digits_savedmodel
    assert artifact.signature.inputs == (TensorSpec("image", "float32", (None, 8, 8, 1)),)
    # A Keras export names its outputs by position.
    assert artifact.signature.outputs == (TensorSpec("output_0", "float32", (None, 10)),)
    assert artifact.details["signature"] == "serving_default"
    assert artifact.details["tensorflow_version"]
    assert any(p.name == "saved_model.pb" for p in artifact.files())


def test_predict_matches_keras(digits_savedmodel: Path, digits_batch: Batch, digits_reference: Batch) -> None:
    out = load_model(digits_savedmodel).predict(digits_batch)
    assert list(out) == ["output_0"]
    assert out["output_0"].dtype == np.float32
    np.testing.assert_allclose(out["output_0"], digits_reference["probabilities"], atol=1e-5)


def test_dynamic_batch(digits_savedmodel: Path, digits_batch: Batch, digits_reference: Batch) -> None:
    source = load_model(digits_savedmodel)
    for n in (1, 3):
        out = source.predict({"image": digits_batch["image"][:n]})
        np.testing.assert_allclose(out["output_0"], digits_reference["probabilities"][:n], atol=1e-5)


def test_multi_io_order_and_values(
    multi_io_savedmodel: Path, multi_io_batch: Batch, multi_io_reference: Batch
) -> None:
    source = load_model(multi_io_savedmodel)
    sig = source.artifact.signature
    assert sig.input_names == ("pixels", "meta")
    assert [t.shape for t in sig.inputs] == [(None, 4, 4, 1), (None, 3)]
    assert sig.output_names == ("output_0", "output_1")
    assert [t.shape for t in sig.outputs] == [(None, 5), (None, 1)]
    out = source.predict(multi_io_batch)
    np.testing.assert_allclose(out["output_0"], multi_io_reference["class_probs"], atol=1e-5)
    np.testing.assert_allclose(out["output_1"], multi_io_reference["score"], atol=1e-5)


def test_renames_restore_the_keras_output_names(
    multi_io_savedmodel: Path, multi_io_batch: Batch, multi_io_reference: Batch
) -> None:
    source = load_model(multi_io_savedmodel, output_names=["class_probs", "score"])
    artifact = source.artifact
    assert artifact.signature.output_names == ("class_probs", "score")
    assert artifact.native_outputs == ("output_0", "output_1")
    assert artifact.native_inputs == ()
    out = source.predict(multi_io_batch)
    assert list(out) == ["class_probs", "score"]
    np.testing.assert_allclose(out["score"], multi_io_reference["score"], atol=1e-5)


def test_pointing_at_saved_model_pb_or_naming_the_format(digits_savedmodel: Path) -> None:
    via_pb = load_model(digits_savedmodel / "saved_model.pb")
    assert via_pb.artifact.path == digits_savedmodel
    explicit = load_model(digits_savedmodel, fmt="savedmodel")
    assert explicit.artifact.signature == via_pb.artifact.signature
