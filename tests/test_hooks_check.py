"""The hooks file is compiled when the config loads: a broken one is refused before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from edgepack.config import load_project
from edgepack.errors import EXIT_BAD_INPUT, ConfigError
from edgepack.hooks_check import check_hooks

WHERE = "edgepack.yaml: hooks"


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        check_hooks(path, WHERE)
    assert info.value.exit_code == EXIT_BAD_INPUT
    hint = info.value.hint()
    assert "\n" not in hint
    return hint


def test_a_good_hooks_file_compiles_without_running(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks.py"
    marker = tmp_path / "ran"
    hooks.write_text(f"open({str(marker)!r}, 'w').close()\n\ndef postprocess(outputs):\n    return outputs\n")
    check_hooks(hooks, WHERE)
    assert not marker.exists()  # compiled, never executed


def test_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks.py"
    hooks.write_text("import numpy as np\n\ndef postprocess(outputs:\n    return outputs\n")
    hint = refused(hooks)
    assert hint.startswith(f"{WHERE}: {hooks}:3: SyntaxError: "), hint


def test_indentation_error(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks.py"
    hooks.write_text("def preprocess(inputs):\nreturn inputs\n")
    assert refused(hooks).startswith(f"{WHERE}: {hooks}:2: IndentationError: ")


def test_null_bytes(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks.py"
    hooks.write_bytes(b"x = 1\n\x00\n")
    assert refused(hooks).startswith(f"{WHERE}: {hooks}")


def test_syntax_warning_is_not_a_refusal(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks.py"
    hooks.write_text('PATTERN = "\\d+"\n')
    check_hooks(hooks, WHERE)


def test_missing_file(tmp_path: Path) -> None:
    assert refused(tmp_path / "hooks.py") == f"{WHERE}: hooks file not found: {tmp_path / 'hooks.py'}"


def test_not_a_py_file(tmp_path: Path) -> None:
    (tmp_path / "hooks.txt").write_text("x = 1\n")
    assert "must be a .py file" in refused(tmp_path / "hooks.txt")
    (tmp_path / "hooks_dir.py").mkdir()
    assert "not a directory" in refused(tmp_path / "hooks_dir.py")


# -- through the config and the CLI ---------------------------------------------------


def _broken_hooks(project: Path) -> tuple[Path, Path]:
    config = project / "edgepack.yaml"
    assert yaml.safe_load(config.read_text())["hooks"] == "hooks.py"
    hooks = project / "hooks.py"
    lines = hooks.read_text().splitlines()
    lines.append("def on_event(event)")  # no colon
    hooks.write_text("\n".join(lines) + "\n")
    return config, hooks


def test_load_project_refuses_broken_hooks(sample_project: Path) -> None:
    config, hooks = _broken_hooks(sample_project)
    line = len(hooks.read_text().splitlines())
    with pytest.raises(ConfigError) as info:
        load_project(sample_project)
    assert info.value.hint().startswith(f"{config}: hooks: {hooks.resolve()}:{line}: SyntaxError: ")


def test_load_project_refuses_missing_hooks(sample_project: Path) -> None:
    (sample_project / "hooks.py").unlink()
    with pytest.raises(ConfigError, match=r"edgepack.yaml: hooks: hooks file not found: .*hooks.py"):
        load_project(sample_project)


def test_cli_build_refuses_broken_hooks_in_one_line(sample_project: Path, tmp_path: Path) -> None:
    from edgepack.cli.main import cli

    config, hooks = _broken_hooks(sample_project)
    out = tmp_path / "dist"
    result = CliRunner().invoke(cli, ["build", str(sample_project), "--out", str(out)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("edgepack: error:")]
    assert len(lines) == 1
    assert lines[0].startswith(f"edgepack: error: {config}: hooks: {hooks.resolve()}:")
    assert "SyntaxError" in lines[0]
    assert not out.exists() or not any(out.iterdir())
