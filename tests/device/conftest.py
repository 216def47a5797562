"""Fixtures for the device installer tests: real bundles built once per session, the test keys,
and the interpreter that runs the x86_64 bundle natively."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from .bundles import (
    ARM_TARGET,
    X86_TARGET,
    Project,
    build_bundles,
    make_project,
    pack_tree,
    sign_tree,
    small_tree,
)


@dataclass(frozen=True)
class DeviceBundles:
    v1: Path  # digits 1.0.0, intel-openvino (x86_64)
    v2: Path  # digits 1.1.0, intel-openvino, same key
    arm: Path  # digits 1.0.0, rpi-tflite (aarch64)
    project: Project  # the 1.0.0 project: its key signed all three
    other_key: Path  # a private key nobody trusts
    work: Path

    @property
    def pub(self) -> Path:
        return self.project.pub

    @property
    def key(self) -> Path:
        return self.project.key


@pytest.fixture(scope="session")
def device_bundles(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> DeviceBundles:
    from edgepack.signing.keys import generate_keypair

    work = tmp_path_factory.mktemp("device-bundles")
    p1 = make_project(sample_dir, work / "v1", "1.0.0")
    p2 = make_project(sample_dir, work / "v2", "1.1.0", key_from=p1.path / "keys")
    first = build_bundles(p1, work / "dist1", [X86_TARGET, ARM_TARGET])
    second = build_bundles(p2, work / "dist2", [X86_TARGET])
    other, _ = generate_keypair(work / "other" / "other")
    return DeviceBundles(
        v1=first[X86_TARGET],
        v2=second[X86_TARGET],
        arm=first[ARM_TARGET],
        project=p1,
        other_key=other,
        work=work,
    )


@pytest.fixture(scope="session")
def x86_python() -> tuple[str, ...]:
    """The CPython the intel-openvino profile targets (3.12), to run its health check natively."""
    from edgepack.errors import PlatformError
    from edgepack.invoke.lambda_base import find_python

    try:
        return (str(find_python("python3.12", "x86_64").path),)
    except PlatformError:
        pytest.skip("no CPython 3.12 on this host")


@pytest.fixture(scope="session")
def small_bundle(
    device_bundles: DeviceBundles, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Path]:
    """make(version, name="digits", padding=0): a signed bundle without vendored packages whose
    health check needs none (fast to install), built once per arguments."""
    made: dict[tuple[str, str, int], Path] = {}
    work = tmp_path_factory.mktemp("small-bundles")

    def make(version: str, name: str = "digits", padding: int = 0) -> Path:
        key = (version, name, padding)
        if key not in made:
            stem = f"{name}-{version}-{padding}"
            tree = small_tree(device_bundles.v1, work / stem, version=version, name=name, padding=padding)
            sign_tree(tree, device_bundles.key)
            made[key] = pack_tree(tree, work / f"{stem}.bundle.tar.gz")
        return made[key]

    return make
