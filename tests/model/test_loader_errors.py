"""Format inference and every way a model file can be wrong: one line naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgepack.errors import EXIT_BAD_INPUT, ModelError
from edgepack.model.loader import brief, infer_format, load_model


def assert_one_line_naming(err: ModelError, path: Path) -> None:
    hint = err.hint()
    assert str(path) in hint
    assert "\n" not in hint
    assert len(hint) < 500
    assert err.exit_code == EXIT_BAD_INPUT


@pytest.fixture(scope="module")
def valid_models(
    keras_model_path: Path, digits_h5: Path, digits_onnx: Path, digits_tflite: Path
) -> dict[str, Path]:
    return {"keras": keras_model_path, "h5": digits_h5, "onnx": digits_onnx, "tflite": digits_tflite}


def test_infer_format(tmp_path: Path, digits_savedmodel: Path) -> None:
    assert infer_format(Path("m.keras")) == "keras"
    assert infer_format(Path("m.h5")) == "keras"
    assert infer_format(Path("M.ONNX")) == "onnx"
    assert infer_format(Path("m.tflite")) == "tflite"
    assert infer_format(digits_savedmodel) == "savedmodel"


@pytest.mark.parametrize("name", ["model.keras", "model.onnx", "model.tflite", "saved"])
def test_missing_model(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with pytest.raises(ModelError, match="model file not found") as info:
        load_model(path)
    assert_one_line_naming(info.value, path)


@pytest.mark.parametrize("name", ["model.pt", "model.pb", "model"])
def test_wrong_extension(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="cannot tell the model format") as info:
        load_model(path)
    assert "model.format" in info.value.message
    assert_one_line_naming(info.value, path)


def test_directory_that_is_not_a_savedmodel(tmp_path: Path) -> None:
    (tmp_path / "variables").mkdir()
    with pytest.raises(ModelError, match="not a TensorFlow SavedModel") as info:
        load_model(tmp_path)
    assert_one_line_naming(info.value, tmp_path)


def test_unknown_format_name(keras_model_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown model format 'pytorch'"):
        load_model(keras_model_path, fmt="pytorch")


@pytest.mark.parametrize("kind", ["keras", "h5", "onnx", "tflite"])
@pytest.mark.parametrize("fault", ["garbage", "truncated", "empty"])
def test_corrupt_model_file(tmp_path: Path, valid_models: dict[str, Path], kind: str, fault: str) -> None:
    good = valid_models[kind].read_bytes()
    content = {
        "garbage": bytes(range(256)) * 40,
        "truncated": good[: len(good) // 2],
        "empty": b"",
    }[fault]
    path = tmp_path / f"{fault}.{kind}"
    path.write_bytes(content)
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert_one_line_naming(info.value, path)


def test_framework_error_is_kept_as_the_cause(tmp_path: Path) -> None:
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(ModelError, match="cannot load the ONNX model") as info:
        load_model(path)
    assert info.value.__cause__ is not None


def test_declared_format_that_does_not_match_the_file(keras_model_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        load_model(keras_model_path, fmt="onnx")
    assert_one_line_naming(info.value, keras_model_path)
    with pytest.raises(ModelError):
        load_model(keras_model_path, fmt="tflite")
    with pytest.raises(ModelError, match="a SavedModel is a directory"):
        load_model(keras_model_path, fmt="savedmodel")


def test_keras_archive_that_is_a_zip_of_something_else(tmp_path: Path, validation_npz: Path) -> None:
    path = tmp_path / "not_a_model.keras"
    shutil.copy(validation_npz, path)  # an .npz is a zip too
    with pytest.raises(ModelError, match="cannot load the Keras model") as info:
        load_model(path)
    assert_one_line_naming(info.value, path)


@pytest.mark.parametrize("fault", ["garbage_pb", "empty_pb", "no_variables"])
def test_corrupt_savedmodel(tmp_path: Path, digits_savedmodel: Path, fault: str) -> None:
    path = tmp_path / "saved"
    if fault == "no_variables":
        shutil.copytree(digits_savedmodel, path, ignore=shutil.ignore_patterns("variables*"))
    else:
        path.mkdir()
        (path / "saved_model.pb").write_bytes(b"" if fault == "empty_pb" else bytes(range(256)) * 8)
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert_one_line_naming(info.value, path)
    if fault == "empty_pb":
        assert "saved_model.pb: the file is empty" in info.value.message
    else:
        assert "cannot load the SavedModel" in info.value.message
        assert info.value.__cause__ is not None


def test_brief_keeps_one_short_line() -> None:
    page = ValueError("first line of the problem\n" + "MLIR dump line\n" * 500)
    assert brief(page) == "ValueError: first line of the problem"
    assert len(brief(ValueError("x" * 1000))) <= 200 + len("ValueError: ")
    assert brief(KeyError()) == "KeyError"
