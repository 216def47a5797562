"""Invoke a Lambda artifact on this host the way Lambda's Python runtime would.

``invoke_local(artifact, event, keys=...)`` verifies the zip against the trusted keys and
unpacks it into a fresh task root through the one trust path (``verify_and_extract``: what
runs is what was verified; with ``keys=None`` the same reader runs in its explicit
unverified mode, with every check but the signature, and the caller must say so), starts a
new interpreter of the artifact's Python version (never the host's venv) with only
what Lambda's managed runtime provides beside the function (awslambdaric, boto3; see
``lambda_base``), serves it the Lambda Runtime API on 127.0.0.1 (``runtime_api``) and
measures like Lambda: Init Duration (process start to the first ``/next``), Duration
(event handed out to result received), Max Memory Used (the process's peak RSS,
``VmHWM``, read while it is still alive). The function's stdout/stderr are its logs.

An aarch64 (Lambda arm64) artifact on an x86_64 host runs under qemu user-mode
emulation: Debian's aarch64 CPython of the artifact's version (``emulation``), the
runtime base installed for aarch64, the same flags, bootstrap, environment, Runtime
API and measurements. Emulation is about 10-50x slower, so its wall-clock allowances
(init and invocation timeouts, and the deadline the function sees) are the configured
timeout times ``EMULATION_TIMEOUT_FACTOR``; durations are emulated ones, never figures
for Graviton. Max Memory Used is the qemu process's, emulator included; the
out-of-memory kill allows ``EMULATOR_MEMORY_MB`` for the emulator.

What cannot run faithfully here is refused with ``PlatformError`` before anything
starts: another CPU architecture that cannot be emulated (an x86_64 artifact on an
aarch64 host; Lambda python3.12 arm64, as no Debian release ships an aarch64
CPython 3.12), a Python version with no interpreter on this host, a host glibc older
than the target's. Function errors, init errors, crashes and
running out of memory are results, as Lambda reports them to a caller; only a
timeout raises (``InvokeTimeoutError``). The process is always killed and the task
root removed at the end.

A function built with a layer split names its layer zip in ``runtime.layer``: the zip is
looked up beside the function's, checked against the recorded sha256, and unpacked into
the sandbox's ``opt`` (Lambda's ``/opt``); ``sys.path`` then reads as on Lambda: task
root, ``opt/python/lib/pythonX.Y/site-packages``, ``opt/python``, the runtime dir. A
missing or altered layer is refused (``BadInputError``) before anything starts.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from ..cache import BuildCache
from ..errors import BadInputError, BudgetExceededError, InvokeError, PlatformError, UnsafePathError
from ..lambda_runtimes import LAMBDA_RUNTIMES
from ..runtime.hashing import sha256_file
from ..runtime.manifest import MANIFEST_FILE, MANIFEST_SCHEMA
from ..runtime.trust.names import unsafe_path_reason
from ..runtime.trust.public_keys import PublicKey
from ..runtime.trust.reader import Limits, VerifiedArtifact, verify_and_extract, verify_tree
from .emulation import can_emulate, check_emulated_runtime
from .lambda_base import (
    BOOTSTRAP_FILE,
    Interpreter,
    emulated_python,
    ensure_runtime_base,
    find_python,
    host_arch,
    host_glibc,
    normalize_arch,
)
from .runtime_api import MAX_EVENT_BYTES, InitError, Invocation, RuntimeAPIServer

# Lambda's limits on a function: memory (MB), timeout (s), unzipped code size (bytes).
MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 10_240
MAX_TIMEOUT_S = 900.0
MAX_UNZIPPED_BYTES = 262_144_000

# Under qemu user-mode emulation code runs about 10-50x slower (here: pure Python 18x,
# imports 7x): a function that fits its timeout on Lambda gets this many times as much
# wall-clock time, and its context's deadline says so. Native runs use 1.
EMULATION_TIMEOUT_FACTOR = 20.0
# What qemu-aarch64 itself holds beside the emulated function (about 30 MB to start, more
# as it translates code): allowed on top of the memory size before an out-of-memory kill.
EMULATOR_MEMORY_MB = 128

DEFAULT_REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # the placeholder account of AWS's documentation

# Never the host's credentials: the function gets these, shaped like Lambda's role credentials.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ASIAEDGEPACKLOCAL000",
    "AWS_SECRET_ACCESS_KEY": "edgepack-local-invoke-not-a-real-secret-key",
    "AWS_SESSION_TOKEN": "edgepack-local-invoke-not-a-real-session-token",
}

# Variables Lambda sets itself and refuses in a function's configuration.
RESERVED_ENV = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)

_POLL_S = 0.01
OPT_DIR = "opt"  # in the sandbox: Lambda's /opt, where layers are extracted
_LAYER_LAUNCHER_FILE = "layer_bootstrap.py"
# Lambda's sys.path with layers: the task root, then /opt/python/lib/pythonX.Y/site-packages
# and /opt/python, then the runtime dir. The bootstrap (run as a script, so its own directory
# would be sys.path[0]) inserts the task root in front of what this leaves.
_LAYER_LAUNCHER = """\
import os, runpy, sys
opt, runtime = sys.argv[1], os.environ["LAMBDA_RUNTIME_DIR"]
site = os.path.join(opt, "python", "lib", "python%d.%d" % sys.version_info[:2], "site-packages")
sys.path[0:1] = [site, os.path.join(opt, "python"), runtime]
sys.argv[:] = [os.path.join(runtime, "bootstrap.py")]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
_BARE_CR = re.compile(r"\r(?!\n)")
_EXIT_GRACE_S = 2.0  # after /init/error the runtime exits by itself; wait that long for its last logs
_SIGNAL_WORDS = {
    signal.SIGKILL: "killed",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGTERM: "terminated",
    signal.SIGBUS: "bus error",
}


class InvokeTimeoutError(InvokeError):
    """The function did not answer (or finish init) within the timeout; it was killed."""

    def __init__(self, message: str, *, request_id: str, logs: str) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.logs = logs


# -- the artifact ----------------------------------------------------------------------


@dataclass(frozen=True)
class LambdaTarget:
    """What the artifact's manifest says about how Lambda runs it."""

    name: str  # the function name (from the manifest's project name)
    lambda_runtime: str  # python3.12
    arch: str  # x86_64 | aarch64
    handler: str  # module.function

    @property
    def python(self) -> str:
        return self.lambda_runtime.removeprefix("python")


def read_lambda_target(data: Mapping[str, Any], artifact: Path) -> LambdaTarget:
    """``target.lambda_runtime``, ``target.arch`` and ``runtime.entrypoint`` from the (verified) manifest."""
    artifact = Path(artifact)
    where = f"{artifact}: {MANIFEST_FILE}"
    if data.get("schema") != MANIFEST_SCHEMA:
        schema = data.get("schema")
        raise BadInputError(f"unknown schema {schema!r} (expected {MANIFEST_SCHEMA})", where=where)
    target = data.get("target")
    if not isinstance(target, dict):
        raise BadInputError("missing section 'target'", where=where)
    if data.get("layer") is True:
        raise BadInputError(
            "this is a Lambda layer (runtime packages), not a function: invoke the function zip naming it",
            where=where,
        )
    kind = target.get("kind", "lambda")
    if kind != "lambda":
        raise PlatformError(
            f"target.kind is {kind!r}: only Lambda artifacts can be invoked locally", where=where
        )
    runtime = target.get("lambda_runtime")
    if not isinstance(runtime, str):
        raise BadInputError("missing field target.lambda_runtime", where=where)
    if runtime not in LAMBDA_RUNTIMES:
        raise PlatformError(
            f"target.lambda_runtime {runtime!r} is not a Lambda Python runtime edgepack runs "
            f"({', '.join(LAMBDA_RUNTIMES)})",
            where=where,
        )
    arch_field = target.get("arch")
    if not isinstance(arch_field, str):
        raise BadInputError("missing field target.arch", where=where)
    arch = normalize_arch(arch_field)
    if arch not in ("x86_64", "aarch64"):
        raise PlatformError(
            f"target.arch {arch_field!r} is not a Lambda architecture (x86_64, aarch64)", where=where
        )
    section = data.get("runtime") or {}
    handler = section.get("entrypoint", "handler.handler") if isinstance(section, dict) else None
    if not isinstance(handler, str) or "." not in handler:
        raise BadInputError(f"runtime.entrypoint {handler!r} is not 'module.function'", where=where)
    name = re.sub(r"[^A-Za-z0-9_-]", "-", str(data.get("name") or artifact.stem))[:64] or "edgepack-local"
    return LambdaTarget(name=name, lambda_runtime=runtime, arch=arch, handler=handler)


def needs_emulation(target: LambdaTarget) -> bool:
    """Whether the artifact is for another architecture that runs here under qemu."""
    return target.arch != host_arch() and can_emulate(target.arch, host_arch())


def check_platform(target: LambdaTarget, artifact: Path) -> None:
    """Refuse what this host cannot run the way Lambda would (before anything starts)."""
    if not sys.platform.startswith("linux"):
        raise PlatformError(
            f"local Lambda invoke needs Linux; this host is {sys.platform}", where=str(artifact)
        )
    host = host_arch()
    if needs_emulation(target):
        try:
            check_emulated_runtime(target.lambda_runtime)
        except PlatformError as e:
            raise PlatformError(e.message, where=str(artifact)) from None
        # No host glibc check: the emulated interpreter runs on the Debian root's glibc (bookworm
        # 2.36, trixie 2.41), newer than any Lambda runtime's, as a native host's must be.
        return
    if target.arch != host:
        lambda_arch = "arm64" if target.arch == "aarch64" else "x86_64"
        raise PlatformError(
            f"the artifact is for Lambda {lambda_arch} ({target.arch}) and this host is {host}: running it "
            f"faithfully needs an {target.arch} host, or qemu-{target.arch} user emulation with an "
            f"{target.arch} python{target.python}, which local invoke does not use yet",
            where=str(artifact),
        )
    glibc = host_glibc()
    lambda_glibc = LAMBDA_RUNTIMES[target.lambda_runtime]
    if glibc is None or glibc < tuple(int(p) for p in lambda_glibc.split(".")):
        have = "no glibc" if glibc is None else f"glibc {glibc[0]}.{glibc[1]}"
        raise PlatformError(
            f"Lambda {target.lambda_runtime} has glibc {lambda_glibc} and this host has {have}: "
            "wheels built for Lambda may not load here",
            where=str(artifact),
        )


def open_function(artifact: Path, dest: Path, keys: Sequence[PublicKey] | None) -> VerifiedArtifact:
    """Verify and unpack a Lambda zip into the task root ``dest`` (which must not exist), or
    copy an unpacked directory there and verify the copy; ``keys=None`` is the unverified mode.

    More than Lambda's 250 MB unzipped is refused before anything is written.
    """
    unverified = keys is None
    trusted = list(keys or ())
    if artifact.is_dir():
        dest.mkdir()
        _copy_dir(artifact, dest)
        return verify_tree(dest, trusted, unverified=unverified)
    limits = Limits(max_bytes=MAX_UNZIPPED_BYTES)
    return verify_and_extract(artifact, dest, trusted, kind="zip", unverified=unverified, limits=limits)


def _extract_layer(
    layer: Path, opt: Path, function: VerifiedArtifact, keys: Sequence[PublicKey] | None
) -> None:
    """Verify and unpack a layer into ``opt``; Lambda counts the function and its layers together."""
    task_bytes = sum(function.sizes.values())
    room = MAX_UNZIPPED_BYTES - task_bytes
    if room <= 0:
        raise BudgetExceededError(
            f"function {task_bytes} bytes unzipped leaves no room for its layer under Lambda's "
            f"{MAX_UNZIPPED_BYTES} bytes",
            where=str(layer),
        )
    verify_and_extract(
        layer, opt, list(keys or ()), kind="zip", unverified=keys is None, limits=Limits(max_bytes=room)
    )


def _copy_dir(src: Path, dest: Path) -> None:
    """Copy an unpacked artifact, with the same refusals as for a zip."""
    total = 0
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        reason = unsafe_path_reason(rel)
        if reason is not None:
            raise UnsafePathError(f"{rel!r} is refused: {reason}", where=str(src))
        if path.is_symlink():
            raise UnsafePathError(f"{rel!r} is refused: a symlink", where=str(src))
        if path.is_file():
            total += path.stat().st_size
        elif not path.is_dir():
            raise UnsafePathError(f"{rel!r} is refused: a special file type", where=str(src))
    if total > MAX_UNZIPPED_BYTES:
        raise BudgetExceededError(
            f"size {total} bytes is over Lambda's {MAX_UNZIPPED_BYTES} bytes", where=str(src)
        )
    shutil.copytree(src, dest, dirs_exist_ok=True)


def function_layer(artifact: Path, manifest: Mapping[str, Any]) -> Path | None:
    """The layer zip a layer-split function names in ``runtime.layer``, checked: it must lie
    beside the function (zip or directory) and have the recorded sha256. None without a layer."""
    artifact = Path(artifact)
    runtime = manifest.get("runtime")
    section = runtime.get("layer") if isinstance(runtime, dict) else None
    if section is None:
        return None
    where = f"{artifact}: {MANIFEST_FILE} runtime.layer"
    file, sha = (section.get(k) if isinstance(section, dict) else None for k in ("file", "sha256"))
    if (
        not isinstance(file, str)
        or not isinstance(sha, str)
        or not file
        or "/" in file
        or file in (".", "..")
    ):
        raise BadInputError("expected {file: <zip name beside the function>, sha256: <hex>}", where=where)
    path = artifact.parent / file
    if not path.is_file():
        raise BadInputError(
            f"the function's layer {file} is missing: it is built beside the function zip", where=str(path)
        )
    actual = sha256_file(path)
    if actual != sha:
        raise BadInputError(
            f"layer {file} has sha256 {actual}, the function was built with {sha}: "
            "rebuild, or use the layer built with this function",
            where=str(path),
        )
    return path


# -- results ---------------------------------------------------------------------------


@dataclass
class InvokeResult:
    """One invocation, as Lambda would report it to the caller and in CloudWatch."""

    request_id: str
    raw: bytes  # the response payload (or the error payload) as the caller gets it
    response: Any = None  # ``raw`` parsed as JSON on success; None when it is not JSON
    error: dict[str, Any] | None = None  # errorType, errorMessage, ... when the invocation failed
    init_error: dict[str, Any] | None = None  # set when the function failed during init
    init_ms: float | None = None  # Init Duration, on a cold start only
    duration_ms: float = 0.0
    memory_mb: int = 1024
    max_memory_mb: int = 0
    # What the function wrote (stdout and stderr, as one stream): on a cold start the init
    # output first (also in ``init_logs``), then this invocation's.
    logs: str = ""
    init_logs: str = ""
    status: str | None = None  # REPORT's Status for runtime-level failures ("error")
    status_error_type: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def billed_ms(self) -> int:
        # Since August 2025 Lambda bills the INIT phase of on-demand invocations too,
        # and REPORT's Billed Duration includes it.
        total = self.duration_ms + (self.init_ms or 0.0)
        return max(1, math.ceil(total))

    def cloudwatch_text(self) -> str:
        """The log stream as CloudWatch shows it: init output, START, output, END, REPORT."""
        parts = [self.init_logs]
        if self.init_error is not None:
            parts.append(
                f"INIT_REPORT Init Duration: {self.init_ms or 0.0:.2f} ms\tPhase: init\tStatus: error\t"
                f"Error Type: {self.status_error_type}\n"
            )
        parts.append(f"START RequestId: {self.request_id} Version: $LATEST\n")
        parts.append(self.logs[len(self.init_logs) :])
        parts.append(f"END RequestId: {self.request_id}\n")
        parts.append(self.report_line() + "\n")
        return "".join(parts)

    def report_line(self) -> str:
        """Lambda's REPORT line for this invocation."""
        parts = [
            f"REPORT RequestId: {self.request_id}",
            f"Duration: {self.duration_ms:.2f} ms",
            f"Billed Duration: {self.billed_ms} ms",
            f"Memory Size: {self.memory_mb} MB",
            f"Max Memory Used: {self.max_memory_mb} MB",
        ]
        if self.init_ms is not None:
            parts.append(f"Init Duration: {self.init_ms:.2f} ms")
        if self.status is not None:
            parts.append(f"Status: {self.status}")
            if self.status_error_type:
                parts.append(f"Error Type: {self.status_error_type}")
        return "\t".join(parts)


def _parse_error(body: bytes, error_type: str | None) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        return payload
    return {"errorType": error_type or "Unknown", "errorMessage": body.decode("utf-8", "replace")}


def encode_event(event: Any) -> bytes:
    """The invoke payload: bytes as given (they must be JSON, as Lambda requires), else JSON."""
    if isinstance(event, bytes | bytearray | memoryview):
        data = bytes(event)
        try:
            json.loads(data)
        except ValueError as e:
            raise BadInputError(f"the event is not JSON (Lambda refuses such payloads): {e}") from e
    else:
        try:
            data = json.dumps(event).encode()
        except (TypeError, ValueError) as e:
            raise BadInputError(f"the event cannot be encoded as JSON: {e}") from e
    if len(data) > MAX_EVENT_BYTES:
        raise BadInputError(f"the event is {len(data)} bytes; Lambda accepts at most {MAX_EVENT_BYTES}")
    return data


# -- the function's logs -----------------------------------------------------------------


class _LogPipe:
    """Collects the function's merged stdout/stderr without ever blocking it.

    ``mark()`` first reads everything already written to the pipe, so a mark taken when
    a result arrives includes every line the function flushed before posting it.
    """

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd
        os.set_blocking(fd, False)
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._selector.register(fd, selectors.EVENT_READ)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lambda-logs", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._fd is not None and not self._stop.is_set():
            if self._selector.select(timeout=0.1):
                with self._lock:
                    self._read()

    def _read(self) -> None:  # holds the lock
        while self._fd is not None:
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._selector.unregister(self._fd)
                self._fd = None
                return
            self._buf += chunk

    def mark(self) -> int:
        with self._lock:
            self._read()
            return len(self._buf)

    def text(self, start: int, end: int | None = None) -> str:
        with self._lock:
            text = bytes(self._buf[start:end]).decode("utf-8", "replace")
        # awslambdaric ends the lines of one multi-line record (a traceback) with a bare CR so
        # that CloudWatch keeps them in one event; CloudWatch shows them as lines.
        return _BARE_CR.sub("\n", text)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._selector.close()


def _vm_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _exit_words(returncode: int) -> str:
    if returncode < 0:
        sig = signal.Signals(-returncode)
        return "signal: " + _SIGNAL_WORDS.get(sig, sig.name.lower().removeprefix("sig"))
    return f"exit status {returncode}"


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"


# -- the execution environment ---------------------------------------------------------


@dataclass
class _Environment:
    """One started runtime process: a Lambda execution environment."""

    proc: subprocess.Popen[bytes]
    logs: _LogPipe
    started_at: float
    hwm_kb: int = 0
    # Per request id: peak RSS when its result arrived, and log offsets at hand-out / result.
    hwm_at_result: dict[str, int] = field(default_factory=dict)
    handout_mark: dict[str, int] = field(default_factory=dict)
    result_mark: dict[str, int] = field(default_factory=dict)

    def sample_memory(self) -> int:
        kb = _vm_hwm_kb(self.proc.pid)
        if kb is not None and kb > self.hwm_kb:
            self.hwm_kb = kb
        return self.hwm_kb

    def kill(self) -> None:
        """Kill the process group (the runtime and anything it started), keep its last logs."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.logs.mark()
        self.logs.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class LocalLambda:
    """A Lambda function from an artifact, run locally; reusable for several invocations.

    The first ``invoke`` is a cold start; later ones reuse the warm process, as Lambda
    does, until it dies (a crash, running out of memory), and then the next one is
    cold again. Use as a context manager: ``close()`` kills the process and removes the
    task root.
    """

    def __init__(
        self,
        artifact: Path | str,
        *,
        python: str | None = None,
        timeout_s: float = 60.0,
        memory_mb: int = 1024,
        env: Mapping[str, str] | None = None,
        region: str = DEFAULT_REGION,
        function_name: str | None = None,
        cache: BuildCache | None = None,
        timeout_factor: float | None = None,
        keys: Sequence[PublicKey] | None = None,
    ) -> None:
        self.artifact = Path(artifact)
        if not MIN_MEMORY_MB <= memory_mb <= MAX_MEMORY_MB:
            raise BadInputError(f"memory_mb={memory_mb}: Lambda allows {MIN_MEMORY_MB} to {MAX_MEMORY_MB} MB")
        if not 0 < timeout_s <= MAX_TIMEOUT_S:
            raise BadInputError(f"timeout_s={timeout_s}: Lambda allows up to {MAX_TIMEOUT_S:.0f} s")
        user_env = dict(env or {})
        reserved = sorted(RESERVED_ENV & user_env.keys())
        if reserved:
            raise BadInputError(f"env sets variables Lambda reserves: {', '.join(reserved)}")
        for key, value in user_env.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise BadInputError(f"env {key!r}: names and values must be strings")
        if timeout_factor is not None and not 0 < timeout_factor <= 1000:
            raise BadInputError(f"timeout_factor={timeout_factor}: must be above 0 (and at most 1000)")
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self._sandbox = Path(tempfile.mkdtemp(prefix="edgepack-invoke-"))
        self.task_root = self._sandbox / "task"
        self.opt_dir: Path | None = None  # Lambda's /opt, when the function has a layer
        self._env: _Environment | None = None
        self._server: RuntimeAPIServer | None = None
        try:
            self._prepare(keys, function_name, python, cache, timeout_factor, region, user_env)
        except BaseException:
            self.close()
            raise

    def _prepare(
        self,
        keys: Sequence[PublicKey] | None,
        function_name: str | None,
        python: str | None,
        cache: BuildCache | None,
        timeout_factor: float | None,
        region: str,
        user_env: dict[str, str],
    ) -> None:
        # What runs is what was verified: the manifest comes from the unpacked, checked tree.
        if not self.artifact.exists():
            raise BadInputError("no such file or directory", where=str(self.artifact))
        function = open_function(self.artifact, self.task_root, keys)
        manifest = function.manifest
        target = read_lambda_target(manifest, self.artifact)
        if function_name is not None:
            target = LambdaTarget(function_name, target.lambda_runtime, target.arch, target.handler)
        self.target = target
        check_platform(target, self.artifact)
        self.emulated = needs_emulation(target)
        self.interpreter: Interpreter
        if self.emulated:
            self.interpreter = emulated_python(target.lambda_runtime, target.arch, python, cache=cache)
        else:
            self.interpreter = find_python(target.lambda_runtime, target.arch, python)
        default_factor = EMULATION_TIMEOUT_FACTOR if self.emulated else 1.0
        self.timeout_factor = float(timeout_factor) if timeout_factor is not None else default_factor
        # The wall-clock allowance for init and for each invocation (the timeout, scaled under emulation).
        self.limit_s = self.timeout_s * self.timeout_factor
        # Memory is measured on the process that runs: under emulation, qemu, so Max Memory Used
        # includes the emulator (its own code and its translation of the guest's code: the digits
        # sample used 121 MB emulated against 59 MB natively). The out-of-memory kill allows for it.
        self.emulator_memory_mb = EMULATOR_MEMORY_MB if self.emulated else 0
        self.runtime_dir = ensure_runtime_base(
            self.interpreter, target.lambda_runtime, target.arch, cache=cache
        )
        self.region = region
        self.function_arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{target.name}"
        self._user_env = user_env
        layer = function_layer(self.artifact, manifest)
        if layer is not None:
            self.opt_dir = self._sandbox / OPT_DIR
            _extract_layer(layer, self.opt_dir, function, keys)
        self._server = RuntimeAPIServer(
            on_handout=self._on_handout, on_result=self._on_result, on_init_error=self._on_init_error
        )

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> LocalLambda:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the function process (and anything it started) and remove the task root."""
        self._stop()
        if self._server is not None:
            self._server.close()
            self._server = None
        shutil.rmtree(self._sandbox, ignore_errors=True)

    def environment(self, runtime_api: str) -> dict[str, str]:
        """The process environment Lambda's Python runtime gives a function, for this host."""
        now = datetime.now(UTC)
        prefix = self.interpreter.path.parent.parent
        task, runtime = str(self.task_root), str(self.runtime_dir)
        env = {
            "PATH": f"{self.interpreter.path.parent}:/usr/local/bin:/usr/bin:/bin",
            "LD_LIBRARY_PATH": f"{prefix}/lib:{runtime}:{runtime}/lib:{task}:{task}/lib"
            + (f":{self.opt_dir}/lib" if self.opt_dir is not None else ""),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            # botocore and friends look under ~: a private home that does not exist, never the user's.
            "HOME": str(self._sandbox / "home"),
            "LAMBDA_TASK_ROOT": task,
            "LAMBDA_RUNTIME_DIR": runtime,
            "_HANDLER": self.target.handler,
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{self.target.lambda_runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": self.target.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.target.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{now:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **DUMMY_CREDENTIALS,
        }
        env.update(self._user_env)
        return env

    def _start(self) -> _Environment:
        assert self._server is not None
        self._stop()
        self._server.reset_environment()
        # -S: the interpreter's own site-packages stay out (the runtime dir stands in for
        # Lambda's); -s: no user site; -B: no .pyc written, as /var/task is read-only on Lambda.
        # Emulated: qemu-aarch64 -L ROOT ROOT/usr/bin/python3.X, then the same arguments.
        cmd = [*self.interpreter.command(), "-S", "-s", "-B", str(self.runtime_dir / BOOTSTRAP_FILE)]
        if self.opt_dir is not None:
            launcher = self._sandbox / _LAYER_LAUNCHER_FILE
            launcher.write_text(_LAYER_LAUNCHER, encoding="utf-8")
            cmd = [*cmd[:-1], str(launcher), str(self.opt_dir)]
        env = self.environment(self._server.address)
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=self.task_root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one log stream, in the order written, as on Lambda
            start_new_session=True,  # its own process group: killed whole, with anything it spawned
            close_fds=True,
        )
        assert proc.stdout is not None
        self._env = _Environment(proc=proc, logs=_LogPipe(proc.stdout.fileno()), started_at=started)
        return self._env

    def _stop(self) -> None:
        env, self._env = self._env, None
        if env is not None:
            env.kill()

    # -- server hooks (they run on the server thread) ---------------------------------

    def _on_handout(self, inv: Invocation) -> None:
        env = self._env
        if env is not None:
            env.handout_mark[inv.request_id] = env.logs.mark()

    def _on_result(self, inv: Invocation) -> None:
        env = self._env
        if env is not None:
            env.hwm_at_result[inv.request_id] = env.sample_memory()
            env.result_mark[inv.request_id] = env.logs.mark()

    def _on_init_error(self, error: InitError) -> None:
        env = self._env
        if env is not None:
            env.sample_memory()

    # -- invoking -----------------------------------------------------------------------

    def invoke(self, event: Any, *, client_context: Mapping[str, Any] | None = None) -> InvokeResult:
        """Invoke the function with ``event`` (JSON-serializable, or JSON bytes) and wait.

        Raises ``InvokeTimeoutError`` when init or the invocation runs past ``timeout_s``
        (times ``timeout_factor`` under emulation).
        """
        payload = encode_event(event)
        if self._server is None:
            raise InvokeError("this local function is closed")
        env = self._env
        cold = env is None or env.proc.poll() is not None
        if env is None or cold:
            env = self._start()
        inv = Invocation(
            request_id=str(uuid.uuid4()),
            event=payload,
            timeout_ms=int(self.limit_s * 1000),
            function_arn=self.function_arn,
            trace_id=_trace_id(),
            client_context=json.dumps(dict(client_context)) if client_context is not None else None,
        )
        submitted = time.perf_counter()
        self._server.submit(inv)
        return self._await(env, inv, cold, env.started_at if cold else submitted)

    def _await(self, env: _Environment, inv: Invocation, cold: bool, waiting_since: float) -> InvokeResult:
        assert self._server is not None
        limit_kb = self.memory_mb * 1024
        # Killed past the function's memory, plus under emulation what qemu itself holds.
        kill_kb = limit_kb + self.emulator_memory_mb * 1024
        while not inv.done.wait(_POLL_S):
            if cold and self._server.init_error_event.is_set():
                return self._init_failed(env, inv)
            if env.proc.poll() is not None:
                if inv.done.is_set():
                    break
                return self._died(env, inv, cold, _exit_words(env.proc.returncode), "Runtime.ExitError")
            if env.sample_memory() > kill_kb:
                # Lambda's sandbox has a hard memory limit; past it the runtime is killed.
                self._stop()
                env.hwm_kb = limit_kb
                return self._died(env, inv, cold, "signal: killed", "Runtime.OutOfMemory")
            now = time.perf_counter()
            if inv.handed_out_at is None and now - waiting_since > self.limit_s:
                self._timed_out(env, inv, cold)
            if inv.handed_out_at is not None and now - inv.handed_out_at > self.limit_s:
                self._timed_out(env, inv, cold)
        if env.hwm_at_result.get(inv.request_id, 0) > kill_kb:
            # It peaked past the limit between two samples: Lambda would have killed it there.
            self._stop()
            env.hwm_kb = limit_kb
            return self._died(env, inv, cold, "signal: killed", "Runtime.OutOfMemory")
        return self._completed(env, inv, cold)

    def _init_ms(self, env: _Environment, cold: bool) -> float | None:
        if not cold or self._server is None or self._server.first_next_at is None:
            return None
        return (self._server.first_next_at - env.started_at) * 1000

    def _completed(self, env: _Environment, inv: Invocation, cold: bool) -> InvokeResult:
        assert inv.handed_out_at is not None and inv.finished_at is not None
        result = InvokeResult(
            request_id=inv.request_id,
            raw=inv.body,
            init_ms=self._init_ms(env, cold),
            duration_ms=(inv.finished_at - inv.handed_out_at) * 1000,
            memory_mb=self.memory_mb,
            max_memory_mb=math.ceil(env.hwm_at_result.get(inv.request_id, env.hwm_kb) / 1024),
        )
        if inv.outcome == "response":
            with contextlib.suppress(ValueError):
                result.response = json.loads(inv.body) if inv.body else None
        else:
            result.error = _parse_error(inv.body, inv.error_type)
        self._logs_for(env, inv, cold, result)
        return result

    def _init_failed(self, env: _Environment, inv: Invocation) -> InvokeResult:
        """The runtime posted /init/error (the handler failed to import or load)."""
        assert self._server is not None and self._server.init_error is not None
        inv.done.set()  # never hand it out
        init_error = self._server.init_error
        with contextlib.suppress(subprocess.TimeoutExpired):
            env.proc.wait(timeout=_EXIT_GRACE_S)  # it exits by itself after logging the error
        self._stop()
        payload = _parse_error(init_error.body, init_error.error_type)
        result = InvokeResult(
            request_id=inv.request_id,
            raw=init_error.body,
            error=payload,
            init_error=payload,
            init_ms=(init_error.at - env.started_at) * 1000,
            memory_mb=self.memory_mb,
            max_memory_mb=math.ceil(env.hwm_kb / 1024),
            status="error",
            status_error_type=str(payload.get("errorType") or init_error.error_type or "Runtime.Unknown"),
        )
        self._logs_for(env, inv, True, result)
        return result

    def _died(
        self, env: _Environment, inv: Invocation, cold: bool, how: str, error_type: str
    ) -> InvokeResult:
        """The runtime process ended (or was killed for memory) without posting a result."""
        inv.done.set()
        now = time.perf_counter()
        self._stop()
        payload = {
            "errorType": error_type,
            "errorMessage": f"RequestId: {inv.request_id} Error: Runtime exited with error: {how}",
        }
        during_init = inv.handed_out_at is None
        result = InvokeResult(
            request_id=inv.request_id,
            raw=json.dumps(payload).encode(),
            error=payload,
            init_error=payload if during_init else None,
            init_ms=(now - env.started_at) * 1000 if during_init else self._init_ms(env, cold),
            duration_ms=0.0 if inv.handed_out_at is None else (now - inv.handed_out_at) * 1000,
            memory_mb=self.memory_mb,
            max_memory_mb=math.ceil(env.hwm_kb / 1024),
            status="error",
            status_error_type=error_type,
        )
        self._logs_for(env, inv, cold, result)
        return result

    def _logs_for(self, env: _Environment, inv: Invocation, cold: bool, result: InvokeResult) -> None:
        """Fill ``logs`` / ``init_logs``: the output of init (cold starts) and of this invocation."""
        start = env.handout_mark.get(inv.request_id)
        if result.init_error is not None:
            result.init_logs = result.logs = env.logs.text(0)
            return
        result.init_logs = env.logs.text(0, start) if cold else ""
        result.logs = result.init_logs + env.logs.text(start or 0, env.result_mark.get(inv.request_id))

    def _timed_out(self, env: _Environment, inv: Invocation, cold: bool) -> NoReturn:
        inv.done.set()
        self._stop()
        timeout = f"{self.timeout_s:.2f}"
        scaled = ""
        if self.timeout_factor != 1:
            scaled = f" x {self.timeout_factor:g} under qemu emulation = {self.limit_s:.2f} s"
        if inv.handed_out_at is None:
            logs = env.logs.text(0)
            phase = "init did not finish" if cold else "the runtime did not ask for the next event"
            message = (
                f"{self.target.handler}: {phase} within {timeout} s{scaled} "
                f"(request {inv.request_id}); the function process was killed"
            )
        else:
            logs = env.logs.text(0 if cold else env.handout_mark.get(inv.request_id, 0))
            message = (
                f"{self.target.handler}: request {inv.request_id} ran past the {timeout} s timeout{scaled} "
                f"(Lambda: 'Task timed out after {timeout} seconds'); the function process was killed"
            )
        logs += f"{inv.request_id} Task timed out after {timeout} seconds\n"
        raise InvokeTimeoutError(message, request_id=inv.request_id, logs=logs)


def invoke_local(
    artifact: Path | str,
    event: Any,
    *,
    python: str | None = None,
    timeout_s: float = 60.0,
    memory_mb: int = 1024,
    env: Mapping[str, str] | None = None,
    region: str = DEFAULT_REGION,
    function_name: str | None = None,
    cache: BuildCache | None = None,
    timeout_factor: float | None = None,
    keys: Sequence[PublicKey] | None = None,
) -> InvokeResult:
    """Invoke a Lambda artifact (zip or unpacked directory) once, cold, as Lambda would.

    ``event`` is JSON-serializable or JSON bytes. Refuses with ``PlatformError`` what
    cannot run faithfully here; raises ``InvokeTimeoutError`` past ``timeout_s`` (times
    ``timeout_factor``: by default 1 natively, ``EMULATION_TIMEOUT_FACTOR`` for an
    aarch64 artifact emulated on x86_64). Function and init errors come back in the result.
    """
    # The first invocation of a fresh environment is the cold one.
    return invoke_local_many(
        artifact,
        [event],
        python=python,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        env=env,
        region=region,
        function_name=function_name,
        cache=cache,
        timeout_factor=timeout_factor,
        keys=keys,
    )[0]


def invoke_local_many(
    artifact: Path | str,
    events: Iterable[Any],
    *,
    python: str | None = None,
    timeout_s: float = 60.0,
    memory_mb: int = 1024,
    env: Mapping[str, str] | None = None,
    region: str = DEFAULT_REGION,
    function_name: str | None = None,
    cache: BuildCache | None = None,
    timeout_factor: float | None = None,
    keys: Sequence[PublicKey] | None = None,
) -> list[InvokeResult]:
    """Invoke one execution environment with several events in turn: the first is a
    cold start (it has ``init_ms``), the rest are warm, unless the process died."""
    with LocalLambda(
        artifact,
        python=python,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        env=env,
        region=region,
        function_name=function_name,
        cache=cache,
        timeout_factor=timeout_factor,
        keys=keys,
    ) as function:
        return [function.invoke(event) for event in events]
