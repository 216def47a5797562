"""Run a new slot's own health check (``predict.py health``) in a child process.

The child is the device's interpreter (``InstallOptions.python``: the device's
``python3``, or ``qemu-aarch64 -L ROOT ROOT/usr/bin/python3.11`` for an aarch64 bundle
on an x86_64 machine), isolated (``-I -S``: only the slot's own packages), writing no
bytecode into the slot (``-B``: the slot must still verify afterwards), in the slot's
directory, with a minimal environment and a timeout. It stays in the installer's process
group, so whatever kills the installer kills the check too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ENTRY = "predict.py"
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}


@dataclass(frozen=True)
class HealthOutcome:
    ok: bool
    reason: str = ""
    max_abs_error: float | None = None


def run_health(slot: Path, python: Sequence[str], timeout_s: float) -> HealthOutcome:
    if not (slot / ENTRY).is_file():
        return HealthOutcome(False, f"the bundle has no {ENTRY} to run its health check")
    # The child's PATH is minimal, so a bare interpreter name is found on the installer's own PATH.
    program = python[0] if "/" in python[0] else shutil.which(python[0]) or python[0]
    cmd = [program, *python[1:], "-I", "-S", "-B", ENTRY, "health"]
    try:
        done = subprocess.run(
            cmd,
            cwd=slot,
            env={**_ENV, "HOME": str(slot)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return HealthOutcome(False, f"the health check did not finish within {timeout_s:g} s")
    except OSError as e:
        return HealthOutcome(False, f"the health check could not start {cmd[0]!r}: {e}")
    out = done.stdout.decode("utf-8", "replace").strip().splitlines()
    report: object = None
    if out:
        try:
            report = json.loads(out[-1])
        except ValueError:
            report = None
    if isinstance(report, dict) and report.get("ok") is True and done.returncode == 0:
        err = report.get("max_abs_error")
        return HealthOutcome(True, "", float(err) if isinstance(err, (int, float)) else None)
    if isinstance(report, dict) and report.get("reason"):
        return HealthOutcome(False, f"health check failed: {report['reason']}")
    tail = " ".join(done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:])[-400:]
    return HealthOutcome(False, f"health check exited {done.returncode}: {tail or 'no output'}")
