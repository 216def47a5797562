"""The thin CLI: help everywhere, init, targets, and the one error boundary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from edgepack.cli.main import cli
from edgepack.config import parse_project_file

COMMANDS = [
    [],
    ["init"],
    ["keys"],
    ["keys", "generate"],
    ["build"],
    ["verify"],
    ["invoke"],
    ["targets"],
    ["report"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "edgepack")
def test_every_command_has_help(args: list[str]) -> None:
    result = CliRunner().invoke(cli, [*args, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_help_imports_no_framework() -> None:
    """`edgepack --help` must not pay for TensorFlow, ONNX Runtime, OpenVINO or pydantic."""
    code = (
        "import sys\n"
        "from edgepack.cli.main import cli\n"
        "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'onnxruntime', 'openvino', 'ai_edge_litert', 'onnx',"
        " 'boto3', 'pydantic', 'jinja2', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_init_writes_a_starter_that_validates(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "net.keras").write_bytes(b"")
    args = ["init", "--dir", str(tmp_path), "--name", "My Net"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = (tmp_path / "edgepack.yaml").read_text()
    project = parse_project_file(text, "edgepack.yaml")
    assert project.name == "my-net"
    assert project.model.path == "model/net.keras"
    assert "# calibration:" in text  # the starter documents what it leaves out


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "edgepack.yaml").write_text("keep: me\n")
    result = CliRunner().invoke(cli, ["init", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "already exists" in result.output
    assert yaml.safe_load((tmp_path / "edgepack.yaml").read_text()) == {"keep": "me"}


def test_targets_lists_profiles() -> None:
    result = CliRunner().invoke(cli, ["targets"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "lambda-x86_64" in result.output
    assert "lambda-arm64" in result.output


def test_bad_config_is_one_line_exit_2(sample_project: Path, tmp_path: Path) -> None:
    config = sample_project / "edgepack.yaml"
    config.write_text(config.read_text().replace("version: 1.0.0", "version: 1.0.0\nversoin: 2"))
    out = tmp_path / "dist"
    result = CliRunner().invoke(cli, ["build", str(sample_project), "--out", str(out)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("edgepack: error:")]
    assert lines == [f"edgepack: error: {config}: versoin: unknown field"]
    assert not out.exists() or not any(out.iterdir())


def test_a_base_image_that_is_not_an_image_fails_before_any_work(
    sample_project: Path, tmp_path: Path
) -> None:
    from edgepack.signing.keys import generate_keypair

    key, _ = generate_keypair(tmp_path / "k")
    out = tmp_path / "dist"
    not_an_image = tmp_path / "base"
    not_an_image.mkdir()
    (not_an_image / "index.json").write_text("{}")
    result = CliRunner().invoke(
        cli,
        ["build", str(sample_project), "--target", "container-cpu", "--out", str(out),
         "--base-image", str(not_an_image), "--key", str(key)],
    )  # fmt: skip
    assert result.exit_code == 2
    error = [line for line in result.output.splitlines() if line.startswith("edgepack: error:")]
    assert len(error) == 1 and str(not_an_image) in error[0]
    assert not out.exists()
