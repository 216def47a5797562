"""Helpers for the channel tests: run ``edgepack publish``, read a channel back, snapshot it."""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from edgepack.cli.main import cli
from edgepack.runtime.device.channel import INDEX_FILE, Index, open_index
from edgepack.runtime.manifest import ATTESTATION_FILE
from edgepack.runtime.trust.public_keys import load_public_keys


def publish_cli(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["publish", *(str(a) for a in args)])


def read_index(channel: Path, pub: Path) -> Index:
    return open_index((channel / INDEX_FILE).read_bytes(), load_public_keys([pub]))


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (hidden temporaries too) and its sha256."""
    if not directory.exists():
        return {}
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def bundle_members(bundle: Path) -> dict[str, dict[str, Any]]:
    """path -> sha256, size and mode of each file in a bundle (the attestation included)."""
    out: dict[str, dict[str, Any]] = {}
    with tarfile.open(bundle) as tar:
        for member in tar:
            if member.isfile():
                f = tar.extractfile(member)
                assert f is not None
                data = f.read()
                out[member.name] = {
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "mode": member.mode & 0o777,
                }
    return out


def file_digests(bundle: Path) -> dict[str, str]:
    return {k: v["sha256"] for k, v in bundle_members(bundle).items() if k != ATTESTATION_FILE}


def one_line_error(result: Result, code: int, *needles: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("edgepack: error: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]


def fleet_share(index: Index, fleet: Sequence[str], *, name: str, target: str, version: str) -> set[str]:
    """The devices of ``fleet`` (nothing installed) that would take ``version`` from ``index``."""
    from edgepack.runtime.device.agent import choose

    chosen = set()
    for device in fleet:
        entry, _ = choose(index, name=name, target=target, installed=None, device_id=device, skip=set())
        if entry is not None and entry.version == version:
            chosen.add(device)
    return chosen


def bump_weights(project: Path, factor: float = 1.02) -> None:
    """Scale the last trained layer's kernel of the project's Keras model: new weights, same
    architecture, so a rebuild changes the model files and little else."""
    from edgepack.model.tf_env import import_keras

    keras = import_keras()
    path = project / "model" / "digits.keras"
    model = keras.models.load_model(path)
    layer = [layer for layer in model.layers if layer.get_weights()][-1]
    weights = layer.get_weights()
    weights[0] = weights[0] * factor
    layer.set_weights(weights)
    model.save(path)


def build_model_update(sample_dir: Path, work: Path, version: str, key_dir: Path) -> Path:
    """The x86_64 bundle of ``version``: the sample with new weights, signed with ``key_dir``'s key."""
    from .bundles import X86_TARGET, build_bundles, make_project

    project = make_project(sample_dir, work / f"digits-{version}", version, key_from=key_dir)
    bump_weights(project.path)
    return build_bundles(project, work / f"dist-{version}", [X86_TARGET])[X86_TARGET]
