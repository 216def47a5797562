"""The health check's child process: how the device's interpreter command is found and run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from edgepack.runtime.device.health_run import run_health


def _slot(tmp_path: Path, body: str) -> Path:
    slot = tmp_path / "slot"
    slot.mkdir()
    (slot / "predict.py").write_text(body)
    return slot


def test_a_bare_interpreter_name_is_found_on_the_installers_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The child runs with a minimal PATH; `--python python3.x` must still mean the one the user sees.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "device-python").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    ok = json.dumps({"ok": True, "max_abs_error": 0.0, "reason": ""})
    slot = _slot(tmp_path, f"print({ok!r})\n")
    outcome = run_health(slot, ("device-python",), 60)
    assert outcome.ok, outcome.reason


def test_a_missing_interpreter_is_a_failed_check_naming_it(tmp_path: Path) -> None:
    slot = _slot(tmp_path, "print('never runs')\n")
    outcome = run_health(slot, ("no-such-python3.99",), 60)
    assert not outcome.ok
    assert "could not start 'no-such-python3.99'" in outcome.reason


def test_a_failing_check_reports_its_reason(tmp_path: Path) -> None:
    failed = json.dumps({"ok": False, "max_abs_error": 1.0, "reason": "output 'p' differs"})
    slot = _slot(tmp_path, f"print({failed!r}); raise SystemExit(1)\n")
    outcome = run_health(slot, (sys.executable,), 60)
    assert (outcome.ok, outcome.reason) == (False, "health check failed: output 'p' differs")
