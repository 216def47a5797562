"""Local Lambda invoke with a real CPython 3.12 and awslambdaric, against tiny artifacts."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from edgepack.errors import BadInputError, EdgepackError, MissingFileError, PlatformError, UnsafePathError
from edgepack.invoke import InvokeResult, InvokeTimeoutError, LocalLambda, invoke_local, invoke_local_many
from edgepack.invoke.lambda_base import Interpreter, host_arch

ArtifactFactory = Callable[..., Path]

ECHO = """
    import json, os, sys
    print("init: echo handler loaded")

    def handler(event, context):
        print("event:", json.dumps(event))
        # An EMF line, as Powertools Metrics prints it: it must reach the logs unchanged.
        print(json.dumps({"_aws": {"Timestamp": 0, "CloudWatchMetrics": [{"Namespace": "t",
              "Dimensions": [[]], "Metrics": [{"Name": "Invocations", "Unit": "Count"}]}]},
              "Invocations": 1}))
        return {
            "echo": event,
            "request_id": context.aws_request_id,
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "arn": context.invoked_function_arn,
            "pid": os.getpid(),
            "cwd": os.getcwd(),
            "env": dict(os.environ),
        }
"""

REPORT_RE = re.compile(
    r"^REPORT RequestId: [0-9a-f-]{36}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\t"
    r"Memory Size: \d+ MB\tMax Memory Used: \d+ MB(\tInit Duration: \d+\.\d\d ms)?$"
)


@pytest.mark.usefixtures("python312")
def test_echo_cold_start_like_lambda(make_artifact: ArtifactFactory, sandboxes: Path) -> None:
    artifact = make_artifact(ECHO)
    result = invoke_local(artifact, {"hello": "world", "n": [1, 2]}, memory_mb=512, timeout_s=30)

    assert result.ok and result.error is None and result.init_error is None
    body = result.response
    assert body["echo"] == {"hello": "world", "n": [1, 2]}
    assert json.loads(result.raw) == body
    # The context awslambdaric built from the Runtime API's headers.
    assert body["request_id"] == result.request_id
    assert body["function_name"] == "invoke-test"
    assert body["memory_limit_in_mb"] == "512"
    assert 25_000 < body["remaining_ms"] <= 30_000
    assert body["arn"].endswith(":function:invoke-test")
    env = body["env"]
    assert env["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["_HANDLER"] == "handler.handler"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["TZ"] == ":UTC"
    assert body["cwd"] == env["LAMBDA_TASK_ROOT"]
    assert "_X_AMZN_TRACE_ID" in env

    # Measured like Lambda.
    assert result.init_ms is not None and result.init_ms > 0
    assert result.duration_ms > 0
    assert 1 < result.max_memory_mb < 512
    line = result.report_line()
    assert REPORT_RE.match(line), line
    assert "\tInit Duration: " in line
    assert "Memory Size: 512 MB" in line

    # The function's output: init output first (cold start), then the invocation's.
    assert result.init_logs == "init: echo handler loaded\n"
    assert result.logs.startswith(result.init_logs)
    assert 'event: {"hello": "world"' in result.logs[len(result.init_logs) :]
    assert '"CloudWatchMetrics"' in result.logs
    # ... and framed the way CloudWatch shows a log stream.
    stream = result.cloudwatch_text()
    assert stream.index("init: echo handler loaded") < stream.index(f"START RequestId: {result.request_id}")
    assert stream.index("START RequestId") < stream.index('event: {"hello"') < stream.index("END RequestId")
    assert stream.rstrip("\n").endswith(line)

    # The process is gone and the task root removed.
    with pytest.raises(ProcessLookupError):
        os.kill(body["pid"], 0)
    assert not Path(env["LAMBDA_TASK_ROOT"]).exists()
    assert list(sandboxes.iterdir()) == []


ISOLATION = """
    import importlib, os, sys

    def handler(event, context):
        imports = {}
        for name in ("pydantic", "numpy", "edgepack", "yaml", "boto3", "botocore", "awslambdaric"):
            try:
                module = importlib.import_module(name)
                imports[name] = getattr(module, "__file__", "") or "namespace"
            except ImportError:
                imports[name] = None
        try:
            import vendored_via_pth  # found through paths.pth in the task root, as on Lambda
            imports["vendored_via_pth"] = vendored_via_pth.__file__
        except ImportError:
            imports["vendored_via_pth"] = None
        return {
            "builtins": [name for name in ("exit", "quit", "help") if hasattr(__builtins__, name)
                         or (isinstance(__builtins__, dict) and name in __builtins__)],
            "version": list(sys.version_info[:2]),
            "executable": sys.executable,
            "path": sys.path,
            "imports": imports,
            "env": dict(os.environ),
        }
"""


def test_only_what_lambda_provides_is_importable(
    make_artifact: ArtifactFactory, python312: Interpreter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing of the host may reach the function: not its variables, not its credentials.
    monkeypatch.setenv("EDGEPACK_HOST_CANARY", "leaked")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAHOSTREALKEY00000")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    extra = {"paths.pth": b"vendor\n", "vendor/vendored_via_pth.py": b"X = 1\n"}
    result = invoke_local(make_artifact(ISOLATION, extra=extra), {}, env={"MODEL_THREADS": "2"})
    assert result.ok, result.logs
    body = result.response

    assert body["version"] == [3, 12]
    assert Path(body["executable"]).resolve() == python312.path.resolve()
    imports = body["imports"]
    # Host packages (the build side, its venv) are not there ...
    assert imports["pydantic"] is None
    assert imports["numpy"] is None
    assert imports["edgepack"] is None
    assert imports["yaml"] is None
    assert imports["vendored_via_pth"] is not None
    assert body["builtins"] == ["exit", "quit", "help"]
    # ... what Lambda's runtime provides is, from the runtime dir, built for 3.12.
    runtime_dir = body["env"]["LAMBDA_RUNTIME_DIR"]
    for name in ("boto3", "botocore", "awslambdaric"):
        assert imports[name] is not None and imports[name].startswith(runtime_dir), (name, imports[name])
    assert any(p.name.startswith("runtime_client.cpython-312") for p in Path(runtime_dir).iterdir())
    # sys.path: the task root first, then the runtime dir, then the interpreter's stdlib only.
    task_root = body["env"]["LAMBDA_TASK_ROOT"]
    assert body["path"][:2] == [task_root, runtime_dir]
    assert not any("site-packages" in p or ".venv" in p for p in body["path"])

    env = body["env"]
    assert "EDGEPACK_HOST_CANARY" not in env
    assert "VIRTUAL_ENV" not in env
    assert env["AWS_ACCESS_KEY_ID"] != "AKIAHOSTREALKEY00000"
    assert env["PYTHONPATH"] == runtime_dir  # set by the bootstrap, as on Lambda
    assert env["MODEL_THREADS"] == "2"


RAISES = """
    calls = 0

    def handler(event, context):
        global calls
        calls += 1
        if event.get("fail"):
            raise ValueError("boom: " + event["fail"])
        return {"calls": calls}
"""


@pytest.mark.usefixtures("python312")
def test_function_error_is_a_result_and_the_process_stays_warm(make_artifact: ArtifactFactory) -> None:
    failed, ok = invoke_local_many(make_artifact(RAISES), [{"fail": "bad input"}, {}])

    assert not failed.ok and failed.response is None and failed.init_error is None
    assert failed.error is not None
    assert failed.error["errorType"] == "ValueError"
    assert failed.error["errorMessage"] == "boom: bad input"
    assert any("raise ValueError" in frame for frame in failed.error["stackTrace"])
    assert "[ERROR] ValueError: boom: bad input" in failed.logs
    assert "Traceback (most recent call last):\n" in failed.logs  # CR-joined lines shown as lines
    assert "Status:" not in failed.report_line()  # a handled function error, not a runtime failure

    # The same execution environment answers next: module state kept, no second init.
    assert ok.ok and ok.response == {"calls": 2}
    assert ok.init_ms is None


@pytest.mark.usefixtures("python312")
def test_import_failure_is_an_init_error(make_artifact: ArtifactFactory) -> None:
    source = """
        print("about to import")
        import edgepack_no_such_module_xyz

        def handler(event, context):
            return {}
    """
    result = invoke_local(make_artifact(source), {"x": 1})

    assert result.init_error is not None and result.error == result.init_error
    assert result.init_error["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'handler'" in result.init_error["errorMessage"]
    assert "edgepack_no_such_module_xyz" in result.init_error["errorMessage"]
    assert result.response is None
    assert result.init_ms is not None and result.init_ms > 0
    assert "about to import" in result.logs
    assert result.init_logs == result.logs
    assert "INIT_REPORT Init Duration:" in result.cloudwatch_text()
    assert result.report_line().endswith("\tStatus: error\tError Type: Runtime.ImportModuleError")


@pytest.mark.usefixtures("python312")
def test_missing_handler_function_is_an_init_error(make_artifact: ArtifactFactory) -> None:
    result = invoke_local(make_artifact("def other(event, context):\n    return 1\n"), {})
    assert result.init_error is not None
    assert result.init_error["errorType"] == "Runtime.HandlerNotFound"


@pytest.mark.usefixtures("python312")
def test_handler_past_the_timeout_is_killed(make_artifact: ArtifactFactory, sandboxes: Path) -> None:
    source = """
        import os, time

        def handler(event, context):
            print("pid", os.getpid(), "root", os.environ["LAMBDA_TASK_ROOT"], flush=True)
            time.sleep(60)
            return {}
    """
    started = time.monotonic()
    with pytest.raises(InvokeTimeoutError) as caught:
        invoke_local(make_artifact(source), {}, timeout_s=1.5)
    elapsed = time.monotonic() - started

    error = caught.value
    assert isinstance(error, EdgepackError) and error.exit_code == 1
    assert "1.50 s timeout" in error.hint()
    assert elapsed < 20
    match = re.search(r"pid (\d+) root (\S+)", error.logs)
    assert match, error.logs
    assert "Task timed out after 1.50 seconds" in error.logs
    with pytest.raises(ProcessLookupError):
        os.kill(int(match.group(1)), 0)
    assert not Path(match.group(2)).exists()
    assert list(sandboxes.iterdir()) == []


@pytest.mark.usefixtures("python312")
def test_two_events_share_one_warm_process(make_artifact: ArtifactFactory) -> None:
    first, second = invoke_local_many(make_artifact(ECHO), [{"i": 1}, {"i": 2}])

    assert first.ok and second.ok
    assert first.response["echo"] == {"i": 1} and second.response["echo"] == {"i": 2}
    assert first.response["pid"] == second.response["pid"]
    assert first.request_id != second.request_id
    assert first.init_ms is not None and second.init_ms is None
    assert "Init Duration" in first.report_line() and "Init Duration" not in second.report_line()
    assert REPORT_RE.match(second.report_line())
    # Each result carries its own invocation's logs; only the cold one has the init output.
    assert "init: echo handler loaded" in first.logs and "init: echo handler loaded" not in second.logs
    assert '"i": 2' in second.logs and '"i": 2' not in first.logs


@pytest.mark.usefixtures("python312")
def test_crash_is_an_exit_error_and_the_next_invoke_is_cold(make_artifact: ArtifactFactory) -> None:
    source = """
        import os

        def handler(event, context):
            if event.get("crash"):
                os._exit(3)
            return {"pid": os.getpid()}
    """
    crashed, after = invoke_local_many(make_artifact(source), [{"crash": True}, {}])

    assert crashed.error is not None and crashed.init_error is None
    assert crashed.error["errorType"] == "Runtime.ExitError"
    assert crashed.error["errorMessage"].endswith("Runtime exited with error: exit status 3")
    assert after.ok and after.init_ms is not None  # a new execution environment


@pytest.mark.usefixtures("python312")
def test_memory_past_the_limit_is_out_of_memory(make_artifact: ArtifactFactory) -> None:
    source = """
        def handler(event, context):
            blob = b"x" * (400 << 20)  # written, so resident: 400 MB in a 128 MB function
            return {"size": len(blob)}
    """
    result = invoke_local(make_artifact(source), {}, memory_mb=128)
    assert result.error is not None
    assert result.error["errorType"] == "Runtime.OutOfMemory"
    assert result.max_memory_mb == 128
    assert result.report_line().endswith("Status: error\tError Type: Runtime.OutOfMemory")


@pytest.mark.usefixtures("python312")
def test_oversized_response_is_refused_like_lambda(make_artifact: ArtifactFactory) -> None:
    source = """
        def handler(event, context):
            return "x" * (7 << 20)
    """
    result = invoke_local(make_artifact(source), {})
    assert result.error is not None and result.error["errorType"] == "Function.ResponseSizeTooLarge"


@pytest.mark.usefixtures("python312")
def test_unpacked_directory_artifact(make_artifact: ArtifactFactory) -> None:
    artifact = make_artifact(ECHO, as_dir=True)
    result = invoke_local(artifact, {"d": 1})
    assert result.ok and result.response["echo"] == {"d": 1}
    assert result.response["env"]["LAMBDA_TASK_ROOT"] != str(artifact)  # a copy, not the original
    assert sorted(p.name for p in artifact.iterdir()) == ["edgepack.json", "handler.py"]


@pytest.mark.usefixtures("python312")
def test_local_lambda_invokes_repeatedly(make_artifact: ArtifactFactory) -> None:
    with LocalLambda(make_artifact(RAISES), timeout_s=10) as function:
        results = [function.invoke({}) for _ in range(3)]
        task_root = function.task_root
        assert task_root.is_dir()
    assert [r.response for r in results] == [{"calls": 1}, {"calls": 2}, {"calls": 3}]
    assert [r.init_ms is not None for r in results] == [True, False, False]
    assert not task_root.exists()


# -- refusals: nothing starts ----------------------------------------------------------


def test_arm64_python312_artifact_is_refused_naming_the_arch(make_artifact: ArtifactFactory) -> None:
    # arm64 artifacts run here under qemu (tests/invoke/test_invoke_arm64.py), with Debian's
    # aarch64 CPython: there is none of 3.12, so a python3.12 arm64 artifact is refused.
    if host_arch() != "x86_64":
        pytest.skip("an aarch64 host runs arm64 artifacts natively")
    with pytest.raises(PlatformError) as caught:
        invoke_local(make_artifact(ECHO, arch="aarch64", lambda_runtime="python3.12"), {})
    assert caught.value.exit_code == 2
    hint = caught.value.hint()
    assert "aarch64" in hint and "CPython 3.12" in hint and "python3.13" in hint


def test_python39_artifact_is_refused(make_artifact: ArtifactFactory) -> None:
    with pytest.raises(PlatformError) as caught:
        invoke_local(make_artifact(ECHO, lambda_runtime="python3.9"), {})
    assert "python3.9" in caught.value.hint()


def test_runtime_without_an_interpreter_is_refused(
    make_artifact: ArtifactFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    # No python3.12 anywhere invoke looks: PATH, pyenv, uv.
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("PYENV_ROOT", str(empty))
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(empty))
    with pytest.raises(PlatformError) as caught:
        invoke_local(make_artifact(ECHO), {})
    assert "python3.12" in caught.value.hint()
    assert caught.value.exit_code == 2


def test_wrong_explicit_python_is_refused(make_artifact: ArtifactFactory) -> None:
    # The host interpreter (3.11, this venv) must never stand in for Lambda's python3.12.
    with pytest.raises(PlatformError) as caught:
        invoke_local(make_artifact(ECHO), {}, python=sys.executable)
    assert "python3.12" in caught.value.hint()


def _zip_with(path: Path, entries: list[zipfile.ZipInfo | str]) -> Path:
    manifest = {
        "schema": "edgepack.manifest/v1",
        "name": "evil",
        "target": {"arch": "x86_64", "lambda_runtime": "python3.12"},
        "runtime": {"entrypoint": "handler.handler"},
    }
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(_regular("edgepack.json"), json.dumps(manifest))
        zf.writestr(_regular("handler.py"), "def handler(e, c):\n    return 1\n")
        for entry in entries:
            zf.writestr(_regular(entry) if isinstance(entry, str) else entry, "pwned")
    return path


def _regular(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    return info


def _symlink_entry() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("link")
    info.create_system = 3
    info.external_attr = (0o120777 << 16) | 0
    return info


@pytest.mark.usefixtures("python312")
@pytest.mark.parametrize(
    "entry",
    ["../evil.py", "/abs/evil.py", "pkg/../../evil.py", "..\\evil.py", _symlink_entry()],
    ids=["dotdot", "absolute", "nested-dotdot", "backslash", "symlink"],
)
def test_zip_slip_is_refused(tmp_path: Path, sandboxes: Path, entry: zipfile.ZipInfo | str) -> None:
    artifact = _zip_with(tmp_path / "evil.zip", [entry])
    with pytest.raises(UnsafePathError) as caught:
        invoke_local(artifact, {})
    assert caught.value.exit_code == 4
    assert list(sandboxes.iterdir()) == []  # nothing written, the task root removed
    assert not (tmp_path / "evil.py").exists()


def test_bad_event_and_settings_are_refused(make_artifact: ArtifactFactory) -> None:
    artifact = make_artifact(ECHO)
    with pytest.raises(BadInputError, match="not JSON"):
        invoke_local(artifact, b"not json")
    with pytest.raises(BadInputError, match="memory_mb"):
        invoke_local(artifact, {}, memory_mb=64)
    with pytest.raises(BadInputError, match="AWS_REGION"):
        invoke_local(artifact, {}, env={"AWS_REGION": "eu-west-1"})


def test_missing_manifest_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(_regular("handler.py"), "def handler(e, c):\n    return 1\n")
    with pytest.raises(MissingFileError, match="edgepack.json"):
        invoke_local(path, {})


def test_report_line_matches_lambda() -> None:
    result = InvokeResult(
        request_id="8f5a3b1e-0000-4000-8000-000000000001",
        raw=b"{}",
        init_ms=345.671,
        duration_ms=12.3449,
        memory_mb=1024,
        max_memory_mb=87,
    )
    assert result.report_line() == (
        "REPORT RequestId: 8f5a3b1e-0000-4000-8000-000000000001\tDuration: 12.34 ms\t"
        "Billed Duration: 359 ms\tMemory Size: 1024 MB\tMax Memory Used: 87 MB\tInit Duration: 345.67 ms"
    )
    warm = InvokeResult(request_id="r", raw=b"{}", duration_ms=0.2, max_memory_mb=40)
    assert warm.report_line().split("\t")[1:3] == ["Duration: 0.20 ms", "Billed Duration: 1 ms"]


@pytest.mark.usefixtures("python312")
def test_warm_invoke_after_an_idle_longer_than_the_timeout(make_artifact: ArtifactFactory) -> None:
    # The timeout runs from hand-out, not from the process start: idling warm is fine.
    with LocalLambda(make_artifact(RAISES), timeout_s=1.0) as function:
        assert function.invoke({}).response == {"calls": 1}
        time.sleep(1.3)
        second = function.invoke({})
    assert second.ok and second.response == {"calls": 2} and second.init_ms is None


@pytest.mark.usefixtures("python312")
def test_init_past_the_timeout_is_killed(make_artifact: ArtifactFactory) -> None:
    source = """
        import time
        time.sleep(60)

        def handler(event, context):
            return {}
    """
    with pytest.raises(InvokeTimeoutError, match="init did not finish within 1.00 s"):
        invoke_local(make_artifact(source), {}, timeout_s=1.0)


def test_python311_artifact_runs_with_amazon_linux_2_wheels(make_artifact: ArtifactFactory) -> None:
    """python3.11 runs on Amazon Linux 2 (glibc 2.26), a ceiling the installer cannot name
    directly: the runtime base must still install (awslambdaric for manylinux_2_17)."""
    if shutil.which("python3.11") is None:
        pytest.skip("no python3.11 on this host")
    artifact = make_artifact(
        """
        import sys
        def handler(event, context):
            return {"version": list(sys.version_info[:2]), "echo": event}
        """,
        lambda_runtime="python3.11",
    )
    result = invoke_local(artifact, {"x": 1})
    assert result.error is None and result.init_error is None, result.logs
    assert result.response == {"version": [3, 11], "echo": {"x": 1}}
