"""``edgepack init``: finds the model, reads its IO signature, writes a config that loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result

from edgepack.cli.main import cli
from edgepack.config import load_project, parse_project_file
from edgepack.errors import ConfigError


def write_onnx(path: Path, input_name: str = "pixels", output_name: str = "scores", classes: int = 3) -> Path:
    """A small ONNX classifier: (batch, 4) float32 -> softmax over ``classes`` scores."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).normal(size=(4, classes)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", [input_name, "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], [output_name], axis=-1),
        ],
        "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", classes])],
        initializer=[numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def run_init(directory: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["init", "--dir", str(directory), *args])


def written(directory: Path) -> tuple[str, dict[str, object]]:
    text = (directory / "edgepack.yaml").read_text()
    return text, yaml.safe_load(text)


def test_onnx_model_signature_is_written_and_the_config_loads(tmp_path: Path) -> None:
    write_onnx(tmp_path / "model" / "net.onnx")
    result = run_init(tmp_path, "--name", "tiny")
    assert result.exit_code == 0, result.output
    text, data = written(tmp_path)
    assert data["model"] == {"path": "model/net.onnx", "inputs": ["pixels"], "outputs": ["scores"]}
    assert "- pixels" in text and "# float32 (None, 4)" in text
    assert "# float32 (None, 3)" in text
    assert "# classes: [...]" in text and "3 class names of scores" in text
    assert ".npz keyed by input name (pixels)" in text
    project = load_project(tmp_path)
    assert project.name == "tiny"
    assert project.model_path == (tmp_path / "model" / "net.onnx").resolve()
    assert "inputs pixels float32 (None, 4); outputs scores float32 (None, 3)" in result.output


def test_names_that_need_quoting_survive(tmp_path: Path) -> None:
    write_onnx(tmp_path / "net.onnx", input_name="input:0", output_name="yes")
    result = run_init(tmp_path)
    assert result.exit_code == 0, result.output
    _, data = written(tmp_path)
    assert data["model"] == {"path": "net.onnx", "inputs": ["input:0"], "outputs": ["yes"]}  # not True
    load_project(tmp_path)


def test_keras_model(tmp_path: Path, keras_model_path: Path) -> None:
    (tmp_path / "model").mkdir()
    shutil.copyfile(keras_model_path, tmp_path / "model" / "digits.keras")
    result = run_init(tmp_path)
    assert result.exit_code == 0, result.output
    text, data = written(tmp_path)
    assert data["model"] == {"path": "model/digits.keras", "inputs": ["image"], "outputs": ["probabilities"]}
    assert "# float32 (None, 8, 8, 1)" in text
    assert "10 class names of probabilities" in text
    load_project(tmp_path)


def test_model_folder_is_preferred_over_the_root(tmp_path: Path) -> None:
    write_onnx(tmp_path / "old.onnx")
    write_onnx(tmp_path / "model" / "net.onnx")
    assert run_init(tmp_path).exit_code == 0
    assert written(tmp_path)[1]["model"]["path"] == "model/net.onnx"  # type: ignore[index]


def test_several_models_exit_2_listing_them(tmp_path: Path) -> None:
    write_onnx(tmp_path / "model" / "a.onnx")
    write_onnx(tmp_path / "model" / "b.onnx")
    (tmp_path / "model" / "export").mkdir()
    (tmp_path / "model" / "export" / "saved_model.pb").write_bytes(b"x")
    result = run_init(tmp_path)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("edgepack: error:")]
    assert lines == [
        f"edgepack: error: {tmp_path}: several models found (model/a.onnx, model/b.onnx, model/export); "
        "choose one with --model PATH"
    ]
    assert not (tmp_path / "edgepack.yaml").exists()


def test_model_option_chooses(tmp_path: Path) -> None:
    write_onnx(tmp_path / "model" / "a.onnx")
    write_onnx(tmp_path / "model" / "b.onnx", output_name="probs", classes=4)
    result = run_init(tmp_path, "--model", "model/b.onnx")
    assert result.exit_code == 0, result.output
    assert written(tmp_path)[1]["model"] == {
        "path": "model/b.onnx",
        "inputs": ["pixels"],
        "outputs": ["probs"],
    }
    load_project(tmp_path)


def test_model_option_that_does_not_exist(tmp_path: Path) -> None:
    result = run_init(tmp_path, "--model", "model/nope.onnx")
    assert result.exit_code == 2
    assert "edgepack: error: --model: model not found: model/nope.onnx" in result.output
    assert not (tmp_path / "edgepack.yaml").exists()


def test_no_model_writes_the_template_with_a_clear_comment(tmp_path: Path) -> None:
    result = run_init(tmp_path)
    assert result.exit_code == 0, result.output
    text, data = written(tmp_path)
    assert data["model"] == {"path": "model/model.keras"}
    assert "# No model found in" in text
    assert "edgepack init --force" in text
    parse_project_file(text, "edgepack.yaml")
    # Loading says what is missing, naming the field.
    with pytest.raises(ConfigError, match=r"edgepack.yaml: model.path: model file not found"):
        load_project(tmp_path)


def test_unreadable_model_is_named_in_a_comment(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "net.onnx").write_bytes(b"")
    result = run_init(tmp_path)
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "the file is empty" in result.output
    text, data = written(tmp_path)
    assert data["model"] == {"path": "model/net.onnx"}
    assert "# edgepack init could not read this model's inputs and outputs:" in text
    load_project(tmp_path)


def test_saved_model_directory_is_a_candidate(tmp_path: Path) -> None:
    (tmp_path / "model" / "export").mkdir(parents=True)
    (tmp_path / "model" / "export" / "saved_model.pb").write_bytes(b"")  # empty: refused before TF
    result = run_init(tmp_path)
    assert result.exit_code == 0, result.output
    assert written(tmp_path)[1]["model"] == {"path": "model/export"}
