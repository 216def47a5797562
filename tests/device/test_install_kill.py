"""Kill -9 of the installer's process group at seeded random moments: every time, a complete,
verified version is active afterwards, and the next install succeeds."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edgepack.runtime.device.installer import InstallOptions, install_bundle, status
from edgepack.runtime.trust.public_keys import load_public_keys
from edgepack.runtime.trust.reader import verify_tree

from .conftest import DeviceBundles

pytestmark = pytest.mark.slow

KILLS = 50
SEED = 15
REPO = Path(__file__).resolve().parents[2]


def installer_command(bundle: Path, root: Path, pub: Path, *, downgrade: bool) -> list[str]:
    cmd = [
        sys.executable, "-m", "edgepack.runtime.device", "install", str(bundle), "--root", str(root),
        "--trust", str(pub),
    ]  # fmt: skip
    return [*cmd, "--allow-downgrade"] if downgrade else cmd


def run_and_kill(cmd: list[str], delay_s: float) -> int | None:
    """Start ``cmd`` in its own process group, SIGKILL the whole group after ``delay_s``.

    Returns the exit status when it finished first, None when it was killed.
    """
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        return proc.wait(timeout=delay_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def check_active(root: Path, pub: Path, allowed: set[str]) -> str:
    active = (root / "active").resolve(strict=True)
    verified = verify_tree(active, load_public_keys([pub]))
    version = str(verified.manifest["version"])
    assert version in allowed
    return version


def campaign(
    root: Path,
    bundles: dict[str, Path],
    pub: Path,
    points: int,
    seed: int,
    log: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """The kill campaign (also run by benchmarks/ota.py): returns counts by what was found."""
    keys = load_public_keys([pub])
    first, second = sorted(bundles)  # installing `second` goes through the version floor; `first` is forced

    def options(version: str) -> InstallOptions:
        return InstallOptions(allow_downgrade=version == first)

    install_bundle(root, bundles[first], keys, options(first))
    # The installer's whole run, measured here, is the window the kills are drawn from.
    started = time.monotonic()
    assert run_and_kill(installer_command(bundles[second], root, pub, downgrade=False), 600) == 0
    duration = time.monotonic() - started
    rng = random.Random(seed)
    counts = dict.fromkeys(
        ("points", "verified_after", "switched", "kept_old", "finished", "next_install_ok"), 0
    )
    for _ in range(points):
        current = str(status(root)["active"]["version"])
        target = second if current == first else first
        cmd = installer_command(bundles[target], root, pub, downgrade=target == first)
        rc = run_and_kill(cmd, rng.uniform(0, duration))
        counts["points"] += 1
        if rc is not None:
            counts["finished"] += 1
        version = check_active(root, pub, {first, second})
        counts["verified_after"] += 1
        counts["switched" if version == target else "kept_old"] += 1
        # The next install: the interrupted one again (a floor raised by the killed run lets the same
        # bundle through), or, when the kill came after the switch, the other version.
        following = target if version != target else current
        result = install_bundle(root, bundles[following], keys, options(following))
        assert result.outcome == "installed"
        assert check_active(root, pub, {following}) == following
        counts["next_install_ok"] += 1
        assert len(list((root / "slots").iterdir())) <= 2
        assert not (root / "tmp").exists()
        if log:
            log(f"kill {counts['points']}: {counts}")
    return counts


def test_kill_minus_nine_at_random_moments_never_leaves_a_broken_version(
    small_bundle: Callable[..., Path], device_bundles: DeviceBundles, tmp_path: Path
) -> None:
    bundles = {"4.0.0": small_bundle("4.0.0", padding=48), "4.1.0": small_bundle("4.1.0", padding=48)}
    counts = campaign(tmp_path / "root", bundles, device_bundles.pub, KILLS, SEED)
    assert counts["points"] == KILLS
    assert counts["verified_after"] == KILLS
    assert counts["next_install_ok"] == KILLS
    # The moments are spread over the run: some kills left the old version, some came after the switch.
    assert counts["kept_old"] > 0
