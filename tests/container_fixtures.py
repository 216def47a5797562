"""Container fixtures shared by every test module (imported into tests/conftest.py).

- ``debian_base_image``: the Debian bookworm base (CPython 3.11) as an OCI layout, built
  once with mmdebstrap into the session's build cache (about 10 s; CI can point
  ``EDGEPACK_CACHE_DIR`` at a kept cache to reuse it). Read it, never write into it.
- ``podman``: runs ``oci:DIR:TAG`` images with podman + runc on the host network, as
  TOOLCHAIN.md says works here, with its own storage under a session temp directory so
  that tests leave nothing in the host's podman store.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgepack.container_base import BaseImage, cached_base_image


@pytest.fixture(scope="session")
def debian_base_image() -> BaseImage:
    """The cached Debian bookworm base image (python3.11, tag ``base``); skips without mmdebstrap."""
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed (apt-get install mmdebstrap)")
    return cached_base_image(suite="bookworm")


@dataclass(frozen=True)
class Podman:
    """``podman run`` with a private store; ``run`` returns the finished process."""

    root: Path

    def command(self) -> list[str]:
        return [
            "podman", "--root", str(self.root / "storage"), "--runroot", str(self.root / "run"),
            "--storage-driver", "vfs", "--runtime", "runc", "--cgroup-manager", "cgroupfs",
        ]  # fmt: skip

    def run_args(
        self,
        image: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        options: Sequence[str] = (),
    ) -> list[str]:
        """The ``podman ... run`` command line (for callers that start it themselves).

        ``options`` go before the image (``--user app``, ``--entrypoint python3``)."""
        cmd = [
            *self.command(), "run", "--rm", "--network=host",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
        ]  # fmt: skip
        for key, value in (env or {}).items():
            cmd += ["--env", f"{key}={value}"]
        return [*cmd, *options, image, *args]

    def run(
        self,
        layout: Path,
        tag: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        options: Sequence[str] = (),
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``oci:LAYOUT:TAG`` to completion."""
        return subprocess.run(
            self.run_args(f"oci:{layout}:{tag}", args, env=env, options=options),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """A podman with its own store; skips when podman or runc is missing."""
    if shutil.which("podman") is None or shutil.which("runc") is None:
        pytest.skip("podman and runc are needed to run images (apt-get install podman runc)")
    root = tmp_path_factory.mktemp("podman")
    yield Podman(root)
    subprocess.run([*Podman(root).command(), "rm", "--all", "--force"], capture_output=True, timeout=120)
    shutil.rmtree(root, ignore_errors=True)
