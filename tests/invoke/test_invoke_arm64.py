"""Lambda arm64 artifacts on this x86_64 host: Debian's aarch64 CPython under qemu user-mode
emulation, with the same runtime base (built for aarch64), bootstrap, Runtime API and REPORT."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edgepack.cache import BuildCache
from edgepack.errors import PlatformError
from edgepack.invoke import InvokeTimeoutError, LocalLambda, invoke_local, invoke_local_many
from edgepack.invoke.emulation import (
    CACHE_NAMESPACE,
    INFO_FILE,
    Emulated,
    aarch64_python,
    qemu_aarch64,
    read_info,
)
from edgepack.invoke.lambda_base import BASE_INFO_FILE, ensure_runtime_base, host_arch
from edgepack.invoke.local import EMULATION_TIMEOUT_FACTOR

ArtifactFactory = Callable[..., Path]

REPORT_RE = re.compile(
    r"^REPORT RequestId: [0-9a-f-]{36}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: \d+ MB\tMax Memory Used: \d+ MB(\tInit Duration: \d+\.\d\d ms)?$"
)

pytestmark = pytest.mark.skipif(host_arch() != "x86_64", reason="emulates aarch64 on an x86_64 host")

NO_MMDEBSTRAP = (
    "needs mmdebstrap (apt-get install mmdebstrap; scripts/setup.sh installs it) "
    "for Debian's aarch64 CPython and qemu"
)


def _emulated(version: str) -> Emulated:
    if shutil.which("mmdebstrap") is None:
        pytest.skip(NO_MMDEBSTRAP)
    return aarch64_python(version, BuildCache.default())


@pytest.fixture(scope="session")
def emulated313() -> Emulated:
    """trixie's aarch64 CPython 3.13 and trixie's qemu-aarch64, in the session's build cache."""
    return _emulated("3.13")


ECHO = """
    import importlib, json, os, platform, sys
    print("init: arm64 handler loaded on", platform.machine())

    def handler(event, context):
        print("event:", json.dumps(event))
        imports = {}
        for name in ("numpy", "pydantic", "edgepack", "boto3", "botocore", "awslambdaric"):
            try:
                imports[name] = importlib.import_module(name).__file__
            except ImportError:
                imports[name] = None
        return {
            "echo": event,
            "machine": platform.machine(),
            "version": list(sys.version_info[:2]),
            "executable": sys.executable,
            "path": sys.path,
            "imports": imports,
            "request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "pid": os.getpid(),
            "cwd": os.getcwd(),
            "env": dict(os.environ),
        }
"""


def test_arm64_python313_artifact_runs_on_aarch64_under_qemu(
    make_artifact: ArtifactFactory, emulated313: Emulated, sandboxes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEPACK_HOST_CANARY", "leaked")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAHOSTREALKEY00000")
    artifact = make_artifact(ECHO, arch="aarch64", lambda_runtime="python3.13")
    result = invoke_local(artifact, {"hello": "graviton"}, memory_mb=512, timeout_s=30)

    assert result.ok, result.logs
    body = result.response
    assert body["echo"] == {"hello": "graviton"}
    # Really aarch64 machine code, really CPython 3.13: Debian trixie's, under qemu.
    assert body["machine"] == "aarch64"
    assert body["version"] == [3, 13]
    assert Path(body["executable"]) == emulated313.python
    assert Path(body["executable"]).is_relative_to(emulated313.root)
    assert body["request_id"] == result.request_id

    # Only what Lambda's runtime provides, built for aarch64 cp313, from the runtime dir.
    env = body["env"]
    runtime_dir = env["LAMBDA_RUNTIME_DIR"]
    imports = body["imports"]
    assert imports["numpy"] is None and imports["pydantic"] is None and imports["edgepack"] is None
    for name in ("boto3", "botocore", "awslambdaric"):
        assert imports[name] is not None and imports[name].startswith(runtime_dir), (name, imports[name])
    natives = [p.name for p in Path(runtime_dir).glob("runtime_client*.so")]
    assert natives == ["runtime_client.cpython-313-aarch64-linux-gnu.so"]
    task_root = env["LAMBDA_TASK_ROOT"]
    assert body["path"][:2] == [task_root, runtime_dir]
    assert all(p.startswith((task_root, runtime_dir, str(emulated313.root))) for p in body["path"])
    assert body["cwd"] == task_root

    # The same clean environment as natively: no host variables, dummy credentials.
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.13"
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert "EDGEPACK_HOST_CANARY" not in env and "VIRTUAL_ENV" not in env
    assert not any(k.startswith("QEMU_") for k in env)
    assert env["AWS_ACCESS_KEY_ID"] != "AKIAHOSTREALKEY00000"
    # The deadline the function sees is the wall-clock allowance: the timeout, scaled for emulation.
    assert 30_000 < body["remaining_ms"] <= 30_000 * EMULATION_TIMEOUT_FACTOR

    # Measured and reported like Lambda (the memory is qemu's, emulator included).
    assert result.init_ms is not None and result.init_ms > 0
    assert result.duration_ms > 0
    assert 1 < result.max_memory_mb < 512
    line = result.report_line()
    assert REPORT_RE.match(line), line
    assert "\tInit Duration: " in line and "Memory Size: 512 MB" in line
    assert result.init_logs == "init: arm64 handler loaded on aarch64\n"
    assert 'event: {"hello": "graviton"}' in result.logs[len(result.init_logs) :]
    assert result.cloudwatch_text().rstrip("\n").endswith(line)

    # The emulator process is gone and the task root removed.
    with pytest.raises(ProcessLookupError):
        os.kill(body["pid"], 0)
    assert not Path(task_root).exists()
    assert list(sandboxes.iterdir()) == []


RAISES = """
    calls = 0

    def handler(event, context):
        global calls
        calls += 1
        if event.get("fail"):
            raise ValueError("boom: " + event["fail"])
        return {"calls": calls}
"""


@pytest.mark.usefixtures("emulated313")
def test_function_error_then_a_warm_invoke_under_emulation(make_artifact: ArtifactFactory) -> None:
    artifact = make_artifact(RAISES, arch="aarch64", lambda_runtime="python3.13")
    failed, ok = invoke_local_many(artifact, [{"fail": "arm"}, {}])

    assert failed.error is not None and failed.init_error is None
    assert failed.error["errorType"] == "ValueError" and failed.error["errorMessage"] == "boom: arm"
    assert "[ERROR] ValueError: boom: arm" in failed.logs
    assert ok.ok and ok.response == {"calls": 2}  # the same emulated process, warm
    assert ok.init_ms is None and REPORT_RE.match(ok.report_line())


@pytest.mark.usefixtures("emulated313")
def test_import_failure_is_an_init_error_under_emulation(make_artifact: ArtifactFactory) -> None:
    source = """
        import edgepack_no_such_module_arm64

        def handler(event, context):
            return {}
    """
    result = invoke_local(make_artifact(source, arch="aarch64", lambda_runtime="python3.13"), {})
    assert result.init_error is not None
    assert result.init_error["errorType"] == "Runtime.ImportModuleError"
    assert "edgepack_no_such_module_arm64" in result.init_error["errorMessage"]


@pytest.mark.usefixtures("emulated313")
def test_emulated_timeout_is_scaled_and_kills_qemu(make_artifact: ArtifactFactory, sandboxes: Path) -> None:
    source = """
        import os, time

        def handler(event, context):
            print("pid", os.getpid(), "remaining", context.get_remaining_time_in_millis(), flush=True)
            time.sleep(120)
            return {}
    """
    artifact = make_artifact(source, arch="aarch64", lambda_runtime="python3.13")
    with LocalLambda(artifact, timeout_s=1.0, timeout_factor=3) as function:
        assert function.emulated and function.limit_s == 3.0
        started = time.monotonic()
        with pytest.raises(InvokeTimeoutError) as caught:
            function.invoke({})
        elapsed = time.monotonic() - started
    error = caught.value
    assert "ran past the 1.00 s timeout x 3 under qemu emulation = 3.00 s" in error.hint()
    assert "Task timed out after 1.00 seconds" in error.logs
    assert 3.0 <= elapsed < 60
    match = re.search(r"pid (\d+) remaining (\d+)", error.logs)
    assert match, error.logs
    assert 1_000 < int(match.group(2)) <= 3_000  # the scaled deadline, as the function saw it
    with pytest.raises(ProcessLookupError):
        os.kill(int(match.group(1)), 0)
    assert list(sandboxes.iterdir()) == []


@pytest.mark.usefixtures("emulated313")
def test_memory_past_the_limit_is_out_of_memory_under_emulation(make_artifact: ArtifactFactory) -> None:
    source = """
        def handler(event, context):
            blob = b"x" * (600 << 20)  # far past 128 MB, and past what qemu itself is allowed
            return {"size": len(blob)}
    """
    result = invoke_local(
        make_artifact(source, arch="aarch64", lambda_runtime="python3.13"), {}, memory_mb=128
    )
    assert result.error is not None and result.error["errorType"] == "Runtime.OutOfMemory"
    assert result.max_memory_mb == 128


# -- refusals: nothing starts ----------------------------------------------------------


def test_arm64_python312_is_refused_naming_the_runtimes_that_work(
    make_artifact: ArtifactFactory, sandboxes: Path
) -> None:
    with pytest.raises(PlatformError) as caught:
        invoke_local(make_artifact(ECHO, arch="aarch64", lambda_runtime="python3.12"), {})
    message = caught.value.hint()
    assert caught.value.exit_code == 2
    assert "no Debian release ships an aarch64 CPython 3.12" in message
    assert "lambda_runtime to python3.13 to invoke it here" in message
    assert list(sandboxes.iterdir()) == []


def test_missing_mmdebstrap_is_refused_naming_the_package(
    make_artifact: ArtifactFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    artifact = make_artifact(ECHO, arch="aarch64", lambda_runtime="python3.13")
    with pytest.raises(PlatformError) as caught:
        invoke_local(artifact, {}, cache=BuildCache(tmp_path / "fresh-cache"))
    assert "apt-get install mmdebstrap" in caught.value.hint()
    assert caught.value.exit_code == 2


def test_explicit_python_is_refused_for_an_emulated_artifact(make_artifact: ArtifactFactory) -> None:
    artifact = make_artifact(ECHO, arch="aarch64", lambda_runtime="python3.13")
    with pytest.raises(PlatformError, match="leave python unset"):
        invoke_local(artifact, {}, python="python3.13")


# -- the emulation module -----------------------------------------------------------------


def test_debian_root_and_qemu_are_cached(emulated313: Emulated) -> None:
    cache = BuildCache.default()
    assert emulated313.root.parent == cache.root / CACHE_NAMESPACE
    assert emulated313.version[:2] == (3, 13)
    # qemu 10 from trixie (bookworm's 7.2 segfaults inside ai-edge-litert), only that binary kept.
    qemu_entry = emulated313.qemu.parents[2]
    assert str(read_info(qemu_entry)["qemu"]).startswith("qemu-aarch64 version 10.")
    assert sorted(p.name for p in emulated313.qemu.parent.iterdir()) == ["qemu-aarch64"]
    # The root: merged-/usr links, no device nodes, the standard library compiled for 3.13.
    root = emulated313.root
    assert os.readlink(root / "lib") == "usr/lib" and os.readlink(root / "bin") == "usr/bin"
    assert not (root / "dev").exists()
    assert (root / "usr/lib/python3.13/json/__pycache__/__init__.cpython-313.pyc").is_file()
    info = read_info(root)
    assert info["suite"] == "trixie" and info["arch"] == "arm64"
    assert (root / INFO_FILE).is_file()

    started = time.monotonic()
    again = aarch64_python("3.13", cache)
    assert again == emulated313
    assert qemu_aarch64(cache) == emulated313.qemu
    assert time.monotonic() - started < 1.0  # from the cache: no mmdebstrap, no qemu run


def test_runtime_base_for_aarch64_is_built_with_aarch64_wheels(emulated313: Emulated) -> None:
    from edgepack.invoke.lambda_base import Interpreter

    interp = Interpreter(emulated313.python, emulated313.version, "aarch64", emulation=emulated313)
    base = ensure_runtime_base(interp, "python3.13", "aarch64", cache=BuildCache.default())
    info = json.loads((base / BASE_INFO_FILE).read_text())
    assert info["python"] == "3.13" and info["arch"] == "aarch64" and info["glibc"] == "2.34"
    assert info["installed"]["awslambdaric"] == "4.2.2"
    assert [p.name for p in base.glob("*.so")] == ["runtime_client.cpython-313-aarch64-linux-gnu.so"]
    # Compiled by the emulated 3.13 itself, as uv's --compile-bytecode does natively.
    assert (base / "botocore" / "__pycache__" / "__init__.cpython-313.pyc").is_file()
    assert not list(base.rglob("*.cpython-311.pyc"))
    assert not (base / "bin").exists()


@pytest.mark.slow
def test_arm64_python311_artifact_runs_with_bookworms_python(make_artifact: ArtifactFactory) -> None:
    emulated = _emulated("3.11")
    assert emulated.version[:2] == (3, 11) and read_info(emulated.root)["suite"] == "bookworm"
    result = invoke_local(make_artifact(ECHO, arch="aarch64", lambda_runtime="python3.11"), {"v": 311})
    assert result.ok, result.logs
    assert result.response["machine"] == "aarch64" and result.response["version"] == [3, 11]
    assert result.response["env"]["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    natives = [p.name for p in Path(result.response["env"]["LAMBDA_RUNTIME_DIR"]).glob("runtime_client*.so")]
    assert natives == ["runtime_client.cpython-311-aarch64-linux-gnu.so"]
