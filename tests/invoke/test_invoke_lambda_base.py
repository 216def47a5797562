"""The runtime base: Lambda's Python, awslambdaric and boto3, for the artifact's Python."""

from __future__ import annotations

import json
import time

import pytest

from edgepack.cache import BuildCache
from edgepack.errors import PlatformError
from edgepack.invoke.lambda_base import (
    BASE_INFO_FILE,
    BOOTSTRAP_FILE,
    Interpreter,
    ensure_runtime_base,
    find_python,
    normalize_arch,
)


def test_arch_spellings() -> None:
    assert normalize_arch("amd64") == "x86_64"
    assert normalize_arch("arm64") == "aarch64"
    assert normalize_arch("aarch64") == "aarch64"


def test_found_interpreter_is_the_real_binary(python312: Interpreter) -> None:
    assert python312.minor == "3.12" and python312.machine == "x86_64"
    assert "shims" not in python312.path.parts  # pyenv shims resolve to what they run
    assert find_python("python3.12", "x86_64", explicit=str(python312.path)) == python312


def test_explicit_interpreter_must_match(python312: Interpreter) -> None:
    with pytest.raises(PlatformError, match="aarch64"):
        find_python("python3.12", "aarch64", explicit=str(python312.path))
    with pytest.raises(PlatformError, match="not a CPython"):
        find_python("python3.12", "x86_64", explicit="/nonexistent/python3.12")


def test_runtime_base_is_built_for_the_target_python_and_cached(python312: Interpreter) -> None:
    cache = BuildCache.default()
    base = ensure_runtime_base(python312, "python3.12", "x86_64", cache=cache)
    info = json.loads((base / BASE_INFO_FILE).read_text())
    assert info["python"] == "3.12" and info["arch"] == "x86_64" and info["glibc"] == "2.34"
    assert info["installed"]["awslambdaric"] == "4.2.2"
    assert "boto3" in info["installed"] and "botocore" in info["installed"]
    assert (base / BOOTSTRAP_FILE).is_file()
    # The native Runtime API client is the cp312 build, not the host's cp311 one.
    natives = sorted(p.name for p in base.glob("runtime_client*.so"))
    assert natives and all("cpython-312-x86_64" in name for name in natives)
    assert not (base / "bin").exists()

    started = time.monotonic()
    again = ensure_runtime_base(python312, "python3.12", "x86_64", cache=cache)
    assert again == base
    assert time.monotonic() - started < 1.0  # from the cache, no installer run
