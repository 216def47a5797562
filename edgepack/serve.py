"""``edgepack serve``: run the Open Inference Protocol server the container image runs, locally.

Each artifact is verified (when keys are given; otherwise the same reader runs unverified
and the command says so) and unpacked in one pass (``verify_and_extract``) into a private
directory, and the server runs as a child
process of the artifact's own Python with nothing on its path but the first artifact's
tree: the runtime and the packages vendored for it, as in the image. ``-S`` keeps the
host's site-packages out, so a package the artifact forgot fails here as it would there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

SERVER_MODULE = "edgepack_runtime.http_server"


@dataclass(frozen=True)
class ServePlan:
    python: str
    roots: tuple[Path, ...]
    manifests: tuple[dict[str, Any], ...]

    def command(self, server_args: Sequence[str]) -> list[str]:
        return [self.python, "-S", "-m", SERVER_MODULE, *map(str, self.roots), *server_args]


def _interpreter(version: str, override: str | None) -> str:
    if override:
        return override
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    found = shutil.which(f"python{version}")
    if found is None:
        raise ConfigError(
            f"the artifact runs on Python {version}, which is not on PATH; install it or pass --python",
            where="edgepack serve",
        )
    return found


def plan_serving(
    artifacts: Sequence[Path], workdir: Path, keys: Sequence[Any], python: str | None = None
) -> ServePlan:
    """Open every artifact under ``workdir`` and check they can share one server process."""
    from .invoke.lambda_base import host_arch as host_machine
    from .runtime.trust.reader import verify_and_extract

    host_arch = host_machine()
    roots: list[Path] = []
    manifests: list[dict[str, Any]] = []
    names: dict[str, Path] = {}
    for index, artifact in enumerate(artifacts):
        root = workdir / f"model-{index}"
        manifest = verify_and_extract(artifact, root, keys, unverified=not keys).manifest
        target = manifest.get("target") or {}
        where = str(artifact)
        if target.get("arch") != host_arch:
            raise ConfigError(
                f"built for {target.get('arch')}, this host is {host_arch}: serve it on its target",
                where=where,
            )
        if not (root / "edgepack_runtime").is_dir():
            raise ConfigError("holds no edgepack_runtime package: not an edgepack artifact", where=where)
        name = str(manifest.get("name"))
        if name in names:
            raise ConfigError(f"a second artifact of model {name!r} (first: {names[name]})", where=where)
        names[name] = artifact
        if manifests:
            first = manifests[0]
            for key, value, other in (
                ("python", target.get("python"), first["target"].get("python")),
                ("packages", manifest["runtime"].get("packages"), first["runtime"].get("packages")),
            ):
                if value != other:
                    raise ConfigError(
                        f"needs other runtime {key} than {artifacts[0]}: one server process runs "
                        "one runtime tree; serve them separately",
                        where=where,
                    )
        roots.append(root)
        manifests.append(manifest)
    version = str(manifests[0]["target"].get("python"))
    return ServePlan(python=_interpreter(version, python), roots=tuple(roots), manifests=tuple(manifests))


def run_server(plan: ServePlan, server_args: Sequence[str]) -> int:
    """Run the server until it exits; SIGINT and SIGTERM are passed on for a graceful stop."""
    child = subprocess.Popen(plan.command(server_args), cwd=plan.roots[0], env=_child_env())

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if child.poll() is None:
            child.kill()
            child.wait()


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def serve(
    artifacts: Sequence[Path], keys: Sequence[Any], server_args: Sequence[str], python: str | None = None
) -> int:
    with tempfile.TemporaryDirectory(prefix="edgepack-serve-") as tmp:
        plan = plan_serving(artifacts, Path(tmp), keys, python)
        return run_server(plan, server_args)
