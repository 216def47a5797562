"""The device installer on real bundles: install, status, rollback, the version floor, a failed
health check, the aarch64 bundle under qemu, and the installer run from a bundle's own runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgepack.cli.main import cli
from edgepack.runtime.device.installer import InstallOptions, install_bundle, present_blobs, rollback, status
from edgepack.runtime.trust.errors import InstallError
from edgepack.runtime.trust.public_keys import load_public_keys
from edgepack.runtime.trust.reader import verify_tree

from .bundles import pack_tree, sign_tree, unpack
from .conftest import DeviceBundles

pytestmark = pytest.mark.slow


def _cli(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


def _verify_active(root: Path, pub: Path) -> str:
    verified = verify_tree((root / "active").resolve(), load_public_keys([pub]))
    return str(verified.manifest["version"])


def test_install_status_rollback_and_the_floor(
    device_bundles: DeviceBundles, x86_python: tuple[str, ...], tmp_path: Path
) -> None:
    root, pub, python = tmp_path / "root", device_bundles.pub, " ".join(x86_python)
    code, out = _cli(
        "device", "install", device_bundles.v1, "--root", root, "--trust", pub, "--python", python
    )
    assert code == 0, out
    assert "installed 1.0.0" in out
    code, out = _cli(
        "device", "install", device_bundles.v2, "--root", root, "--trust", pub, "--python", python
    )
    assert code == 0, out
    assert _verify_active(root, pub) == "1.1.0"

    code, out = _cli("device", "status", "--root", root)
    state = json.loads(out)
    assert (state["active"]["version"], state["previous"]["version"]) == ("1.1.0", "1.0.0")
    assert state["floor"]["version"] == "1.1.0"
    assert [r["outcome"] for r in state["journal"]] == ["installed", "installed"]
    assert state["active"]["digest"] == state["journal"][-1]["digest"]
    assert len(list((root / "slots").iterdir())) == 2

    # At or below the floor: refused, exit 4, nothing changes.
    for bundle in (device_bundles.v1, device_bundles.v2):
        code, out = _cli("device", "install", bundle, "--root", root, "--trust", pub, "--python", python)
        assert code == 4, out
        assert "not above the installed floor 1.1.0" in out
    assert _verify_active(root, pub) == "1.1.0"
    assert status(root)["journal"][-1]["outcome"] == "refused-downgrade"

    # An explicit rollback to the kept slot is allowed below the floor, and back again.
    code, out = _cli("device", "rollback", "--root", root, "--trust", pub)
    assert code == 0, out
    assert _verify_active(root, pub) == "1.0.0"
    assert status(root)["previous"]["version"] == "1.1.0"
    assert status(root)["floor"]["version"] == "1.1.0"
    code, out = _cli("device", "rollback", "--root", root)
    assert code == 0, out
    assert _verify_active(root, pub) == "1.1.0"

    # --allow-downgrade installs 1.0.0 again (a fresh slot); only two slots are kept.
    code, out = _cli(
        "device", "install", device_bundles.v1, "--root", root, "--trust", pub, "--python", python,
        "--allow-downgrade",
    )  # fmt: skip
    assert code == 0, out
    assert _verify_active(root, pub) == "1.0.0"
    assert status(root)["previous"]["version"] == "1.1.0"
    assert len(list((root / "slots").iterdir())) == 2
    assert sorted(os.listdir(root)) == [
        ".lock",
        "active",
        "journal.jsonl",
        "previous",
        "slots",
        "version-floor.json",
    ]

    blobs = present_blobs(root)
    manifest = json.loads((root / "active" / "edgepack.json").read_text())
    assert blobs[manifest["model"]["sha256"]].is_file()


def test_rollback_without_a_kept_version_and_a_tampered_kept_slot(
    small_bundle: object, device_bundles: DeviceBundles, tmp_path: Path
) -> None:
    root, keys = tmp_path / "root", load_public_keys([device_bundles.pub])
    make = small_bundle
    assert callable(make)
    with pytest.raises(InstallError, match="no previous version"):
        rollback(root)
    install_bundle(root, make("3.0.0"), keys)
    with pytest.raises(InstallError, match="no previous version"):
        rollback(root)
    install_bundle(root, make("3.1.0"), keys)
    kept = (root / "previous").resolve()
    (kept / "predict.py").write_text("print('tampered')\n")
    for with_keys in ((), tuple(keys)):
        with pytest.raises(InstallError, match="no longer verifies"):
            rollback(root, keys=with_keys)
        assert status(root)["active"]["version"] == "3.1.0"
    assert status(root)["journal"][-1]["outcome"] == "rollback-refused"


def test_another_project_is_refused(
    small_bundle: object, device_bundles: DeviceBundles, tmp_path: Path
) -> None:
    make = small_bundle
    assert callable(make)
    root, keys = tmp_path / "root", load_public_keys([device_bundles.pub])
    install_bundle(root, make("3.0.0"), keys)
    code, out = _cli(
        "device", "install", make("9.0.0", "intruder"), "--root", root, "--trust", device_bundles.pub
    )
    assert code == 4, out
    assert "intruder" in out
    assert status(root)["active"]["version"] == "3.0.0"


def test_a_model_failing_its_golden_check_is_rolled_back(
    device_bundles: DeviceBundles, x86_python: tuple[str, ...], tmp_path: Path
) -> None:
    """1.1.0 with its recorded sample outputs changed (and re-signed: the signature is fine, the
    model no longer gives the recorded answer) -> health check fails, 1.0.0 stays active."""
    root, pub, python = tmp_path / "root", device_bundles.pub, " ".join(x86_python)
    code, out = _cli(
        "device", "install", device_bundles.v1, "--root", root, "--trust", pub, "--python", python
    )
    assert code == 0, out
    before = (root / "active").resolve()

    tree = unpack(device_bundles.v2, tmp_path / "bad")
    with np.load(tree / "sample.npz") as sample:
        arrays = {k: sample[k] for k in sample.files}
    name = "output_0"
    arrays[name] = np.roll(arrays[name], 1, axis=-1)  # another class wins
    np.savez(tree / "sample.npz", **arrays)  # type: ignore[arg-type]
    manifest = json.loads((tree / "edgepack.json").read_text())
    import hashlib

    manifest["sample"]["sha256"] = hashlib.sha256((tree / "sample.npz").read_bytes()).hexdigest()
    (tree / "edgepack.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    sign_tree(tree, device_bundles.key)
    bad = pack_tree(tree, tmp_path / "digits-1.1.0-bad.bundle.tar.gz")

    code, out = _cli("device", "install", bad, "--root", root, "--trust", pub, "--python", python)
    assert code == 4, out
    assert "health check failed" in out and "1.0.0 stays active" in out
    assert (root / "active").resolve() == before
    assert _verify_active(root, pub) == "1.0.0"
    last = status(root)["journal"][-1]
    assert last["outcome"] == "health-failed" and last["version"] == "1.1.0"
    assert "sample" in last["reason"] or "differs" in last["reason"]
    assert sorted(p.name for p in (root / "slots").iterdir()) == [before.name]
    assert not (root / "tmp").exists()


def test_aarch64_bundle_installs_and_is_health_checked_under_qemu(
    device_bundles: DeviceBundles, tmp_path: Path
) -> None:
    from edgepack.cache import BuildCache
    from edgepack.errors import PlatformError
    from edgepack.invoke.emulation import aarch64_python

    try:
        emulated = aarch64_python("3.11", BuildCache.default())
    except PlatformError as e:
        pytest.skip(str(e))
    root = tmp_path / "root"
    python = " ".join(emulated.command())
    code, out = _cli(
        "device", "install", device_bundles.arm, "--root", root, "--trust", device_bundles.pub,
        "--python", python, "--health-timeout", "600",
    )  # fmt: skip
    assert code == 0, out
    assert _verify_active(root, device_bundles.pub) == "1.0.0"
    state = status(root)
    assert state["active"]["target"] == "rpi-tflite"
    # The check really ran the aarch64 interpreter: the host's python cannot load LiteRT's aarch64 .so.
    native = InstallOptions(python=(sys.executable,), allow_downgrade=True, health_timeout_s=120)
    with pytest.raises(InstallError, match="health check"):
        install_bundle(root, device_bundles.arm, load_public_keys([device_bundles.pub]), native)
    assert status(root)["active"]["slot"] == state["active"]["slot"]


def test_installer_runs_from_a_bundles_own_runtime(
    device_bundles: DeviceBundles, x86_python: tuple[str, ...], tmp_path: Path
) -> None:
    """No build side: ``python -S -m edgepack_runtime.device`` with only an extracted x86_64
    bundle on the path (its runtime, its vendored numpy and cryptography)."""
    tree = unpack(device_bundles.v1, tmp_path / "bundle")
    if not (tree / "cryptography").is_dir():
        pytest.fail("the intel-openvino bundle vendors no cryptography: the device cannot verify signatures")
    root = tmp_path / "root"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)}

    def device(*args: str | Path) -> subprocess.CompletedProcess[str]:
        # -S: no site-packages, so nothing comes from this host's environment; -E would drop PYTHONPATH.
        cmd = [*x86_python, "-S", "-m", "edgepack_runtime.device", *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)

    done = device("install", device_bundles.v1, "--root", root, "--trust", device_bundles.pub,
                  "--python", " ".join(x86_python))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == "1.0.0"
    done = device("install", device_bundles.v1, "--root", root, "--trust", device_bundles.pub)
    assert done.returncode == 4 and "floor" in done.stderr
    state = json.loads(device("status", "--root", root).stdout)
    assert state["active"]["version"] == "1.0.0"
    probe = subprocess.run(
        [*x86_python, "-S", "-c", "import edgepack, sys; print(edgepack.__file__)"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert probe.returncode != 0, probe.stdout  # the build side is not there
