"""Fixtures for local Lambda invoke: tiny artifact zips with stdlib-only handlers."""

from __future__ import annotations

import json
import tempfile
import textwrap
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgepack.errors import PlatformError
from edgepack.invoke.lambda_base import Interpreter, find_python, host_arch

ArtifactFactory = Callable[..., Path]


def write_artifact(
    dest: Path,
    handler_source: str,
    *,
    lambda_runtime: str = "python3.12",
    arch: str = "x86_64",
    entrypoint: str = "handler.handler",
    extra: dict[str, bytes] | None = None,
    as_dir: bool = False,
) -> Path:
    """A Lambda artifact whose root holds ``edgepack.json`` and ``handler.py``."""
    manifest: dict[str, Any] = {
        "schema": "edgepack.manifest/v1",
        "name": "invoke-test",
        "version": "1.0.0",
        "target": {
            "name": f"lambda-{arch}",
            "kind": "lambda",
            "arch": arch,
            "lambda_runtime": lambda_runtime,
        },
        "runtime": {"entrypoint": entrypoint},
    }
    files = {
        "edgepack.json": json.dumps(manifest).encode(),
        "handler.py": textwrap.dedent(handler_source).encode(),
        **(extra or {}),
    }
    if as_dir:
        dest.mkdir(parents=True)
        for name, data in files.items():
            (dest / name).write_bytes(data)
        return dest
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = 0o100644 << 16  # what edgepack writes; the reader refuses others
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return dest


@pytest.fixture
def make_artifact(tmp_path: Path) -> ArtifactFactory:
    counter = iter(range(1000))

    def make(handler_source: str, **kwargs: Any) -> Path:
        suffix = "" if kwargs.get("as_dir") else ".zip"
        return write_artifact(tmp_path / f"artifact{next(counter)}{suffix}", handler_source, **kwargs)

    return make


@pytest.fixture(scope="session")
def python312() -> Interpreter:
    """The host's CPython 3.12: tests that run a function need it (Lambda python3.12)."""
    if host_arch() != "x86_64":
        pytest.skip("these artifacts are x86_64")
    try:
        return find_python("python3.12", "x86_64")
    except PlatformError as e:
        pytest.skip(f"no CPython 3.12 on this host: {e.hint()}")


@pytest.fixture
def sandboxes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where invoke puts its task roots during the test, to check nothing is left behind."""
    root = tmp_path / "sandboxes"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    yield root
