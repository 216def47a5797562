"""HTTP server: the Open Inference Protocol (KServe v2) over the data plane, plus ``/metrics``.

Run it inside an artifact (or on a host with edgepack installed)::

    python -m edgepack_runtime.http_server ROOT [ROOT ...] [--host H] [--port P] [--workers N]
        [--max-body-bytes B] [--max-connections C] [--grace-seconds S] [--auth-tokens FILE]
        [--access-log]
    python -m edgepack_runtime.http_server probe [--host H] [--port P]   # 0 when ready, else 1

Each ROOT is an artifact; its manifest's ``name`` and ``version`` are the model's name and
version. The environment gives defaults (``EDGEPACK_HOST``, ``EDGEPACK_PORT``,
``EDGEPACK_WORKERS``, ``EDGEPACK_MAX_BODY_BYTES``, ``EDGEPACK_MAX_CONNECTIONS``,
``EDGEPACK_GRACE_SECONDS``, ``EDGEPACK_AUTH_TOKENS``); flags win.

Endpoints: ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2``, ``/v2/models/{name}``
``[/versions/{v}]`` and its ``/ready``, ``POST .../infer`` (JSON tensors or the binary
tensor data extension) and ``GET /metrics`` (Prometheus text 0.0.4). Every refusal is a
4xx with ``{"error": "<one line>"}`` and the server keeps serving; an internal failure is
a 500 with a generic reason, its traceback in the structured log (JSON lines on stderr).

Design, for latency: a small HTTP/1.1 server on plain sockets, one thread per connection
(at most ``--max-connections``), keep-alive, ``TCP_NODELAY``; the model runs in the
connection's thread (the backends release the GIL), at most ``--workers`` at a time.
SIGTERM or SIGINT stops accepting, lets requests in flight finish (``--grace-seconds``),
closes idle connections and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .batching import DynamicBatcher
from .dataplane import parse_json
from .errors import InferenceError, ModelLoadError
from .http_auth import BearerAuth
from .http_wire import (
    MAX_HEAD_BYTES,
    HTTPError,
    Request,
    content_length,
    error_body,
    find_head_end,
    json_bytes,
    one_line,
    parse_head,
    response_head,
)
from .jsonlog import JsonLog
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import ServerMetrics
from .models import DuplicateModelError, ModelRegistry, ServedModel
from .telemetry import MODEL_LOADED, Sink, Telemetry, TelemetryEvent

SERVER_NAME = "edgepack"
EXTENSIONS = ("binary_tensor_data",)
BINARY_HEADER = "inference-header-content-length"
RECV_SIZE = 64 * 1024  # larger reads cost an mmap per call in glibc malloc
SEND_JOIN_LIMIT = 256 * 1024  # below this, head and body go out in one send

_JSON = "application/json"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

Response = tuple[int, list[tuple[str, str]], list[bytes | bytearray | memoryview]]


@dataclass(frozen=True)
class ServerConfig:
    """The resolved settings (flags over environment over defaults)."""

    roots: tuple[Path, ...]
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    max_body_bytes: int = 64 * 1024 * 1024
    max_connections: int = 256
    grace_seconds: float = 30.0
    keep_alive_seconds: float = 75.0  # idle keep-alive connections close after this
    auth_tokens: Path | None = None
    access_log: bool = False


class _Connection:
    __slots__ = ("idle", "peer", "sock")

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self.idle = True  # waiting for the next request: safe to close on shutdown


class InferenceServer:
    """The server for a loaded ``ModelRegistry``; ``serve_forever`` until ``shutdown``."""

    def __init__(
        self,
        registry: ModelRegistry,
        config: ServerConfig,
        *,
        metrics: ServerMetrics | None = None,
        auth: BearerAuth | None = None,
        log: JsonLog | None = None,
    ) -> None:
        self.registry = registry
        self.config = config
        self.metrics = metrics if metrics is not None else ServerMetrics()
        self.auth = auth
        self.log = log if log is not None else JsonLog()
        self._slots = threading.BoundedSemaphore(config.workers)
        self._conn_slots = threading.BoundedSemaphore(config.max_connections)
        self._lock = threading.Lock()
        self._connections: dict[_Connection, threading.Thread] = {}
        self._stopping = False
        self._wake_r, self._wake_w = socket.socketpair()
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        self._listener = socket.create_server((config.host, config.port), family=family, backlog=1024)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        for model in registry:
            manifest = model.manifest
            self.metrics.model_info.set(
                1,
                model.name,
                model.version,
                model.backend,
                manifest.model.precision,
                manifest.target,
                manifest.model.sha256,
                model.artifact_sha256,
            )
        version = next(
            (str(m.manifest.raw.get("build", {}).get("edgepack_version", "")) for m in registry), ""
        )
        self._server_metadata = json_bytes(
            {"name": SERVER_NAME, "version": version or "unknown", "extensions": list(EXTENSIONS)}
        )

    # -- lifecycle ------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept connections until ``shutdown``; then drain (bounded grace) and return."""
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r or self._stopping:
                        break
                    self._accept()
        finally:
            selector.close()
            self._drain()

    def shutdown(self) -> None:
        """Stop accepting and drain; safe from any thread and from a signal handler."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _accept(self) -> None:
        try:
            sock, peer = self._listener.accept()
        except OSError:
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not self._conn_slots.acquire(blocking=False):
            sock.settimeout(1.0)
            self._send_error(sock, HTTPError(503, "too_many_connections", "too many connections; retry"))
            sock.close()
            self.metrics.errors.inc("", "too_many_connections")
            return
        _set_timeouts(sock, self.config.keep_alive_seconds)
        conn = _Connection(sock, f"{peer[0]}:{peer[1]}")
        thread = threading.Thread(target=self._serve, args=(conn,), name=f"conn-{conn.peer}", daemon=True)
        with self._lock:
            self._connections[conn] = thread
        self.metrics.connections.add(1)
        thread.start()

    def _drain(self) -> None:
        self._listener.close()
        with self._lock:
            connections = dict(self._connections)
        busy = sum(not c.idle for c in connections)
        self.log.info("shutting down", in_flight=busy, connections=len(connections))
        self._close_idle()
        deadline = time.monotonic() + self.config.grace_seconds
        for thread in connections.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = list(self._connections)
        if left:
            self.log.warning("grace period over; closing connections", connections=len(left))
            for conn in left:
                _close_quietly(conn.sock, socket.SHUT_RDWR)
        self._wake_r.close()
        self._wake_w.close()
        self.log.info("stopped")

    def _close_idle(self) -> None:
        with self._lock:
            for conn in self._connections:
                if conn.idle:
                    _close_quietly(conn.sock, socket.SHUT_RD)  # wakes the thread blocked in recv

    # -- one connection -------------------------------------------------------------------

    def _serve(self, conn: _Connection) -> None:
        sock = conn.sock
        buf = bytearray()
        try:
            while self._next_request(conn, buf):
                pass
        except OSError:
            pass  # the client went away, or a timeout mid-request: nothing to answer
        finally:
            with self._lock:
                self._connections.pop(conn, None)
            self.metrics.connections.add(-1)
            self._conn_slots.release()
            with contextlib.suppress(OSError):
                sock.close()

    def _next_request(self, conn: _Connection, buf: bytearray) -> bool:
        """Read, answer one request; whether to keep the connection."""
        sock = conn.sock
        conn.idle = True
        if self._stopping and not buf:
            return False
        try:
            request, body = self._read_request(conn, buf)
        except HTTPError as e:
            self._send_error(sock, e)
            if e.status == 413:
                _drain_briefly(sock)
            return False
        except (TimeoutError, BlockingIOError):  # BlockingIOError: SO_RCVTIMEO expired
            if not conn.idle:
                self._send_error(sock, HTTPError(408, "request_timeout", "request not received in time"))
            return False
        if request is None:
            return False
        started = time.perf_counter()
        status, headers, parts = self._respond(request, body, started)
        keep = request.keep_alive and not self._stopping
        if not keep:
            headers.append(("Connection", "close"))
        _send(sock, status, headers, parts)
        if self.config.access_log:
            self.log.info(
                "request",
                method=request.method,
                path=request.target[:200],
                status=status,
                ms=round((time.perf_counter() - started) * 1e3, 3),
                peer=conn.peer,
            )
        return keep

    def _read_request(self, conn: _Connection, buf: bytearray) -> tuple[Request | None, bytearray]:
        """The next request head and its body; ``(None, ...)`` when the client closed."""
        sock = conn.sock
        while True:
            while buf[:1] in (b"\r", b"\n"):  # blank lines before a request line are ignored
                del buf[:1]
            head_end, body_start = find_head_end(buf)
            if head_end >= 0:
                break
            if len(buf) > MAX_HEAD_BYTES:
                raise HTTPError(431, "headers_too_large", "request header section too large", close=True)
            chunk = sock.recv(RECV_SIZE)
            if not chunk:
                if buf.strip():
                    raise HTTPError(400, "incomplete_request", "connection closed mid-request", close=True)
                return None, buf
            conn.idle = False
            buf += chunk
        conn.idle = False
        if head_end > MAX_HEAD_BYTES:
            raise HTTPError(431, "headers_too_large", "request header section too large", close=True)
        request = parse_head(buf[:head_end])
        del buf[:body_start]
        length = content_length(request, self.config.max_body_bytes)
        if not length:
            if length is None and request.method == "POST" and request.path[-1:] == ("infer",):
                raise HTTPError(411, "length_required", "POST needs a Content-Length", close=True)
            return request, bytearray()
        if len(buf) >= length:
            body = buf[:length]
            del buf[:length]
            return request, body
        if "100-continue" in request.headers.get("expect", "").lower() and request.version >= (1, 1):
            sock.sendall(_CONTINUE)
        body = bytearray(length)
        have = len(buf)
        body[:have] = buf
        buf.clear()
        view = memoryview(body)
        while have < length:
            got = sock.recv_into(view[have:], min(length - have, 1 << 20))
            if not got:
                raise HTTPError(400, "incomplete_body", "connection closed before the body ended", close=True)
            have += got
        return request, body

    # -- routing --------------------------------------------------------------------------

    def _respond(self, request: Request, body: bytearray, started: float) -> Response:
        """Route and answer; never raises."""
        model: ServedModel | None = None
        infer = False
        try:
            if request.path[:2] != ("v2", "models") or len(request.path) < 3:
                return self._server_route(request)
            version, action = _model_action(request)
            infer = action == "infer"
            model = self.registry.get(request.path[2], version)
            if action == "ready":
                return _json(200, json_bytes({"name": model.name, "ready": True}))
            if self.auth is not None:
                self.auth.check(model.name, request.headers.get("authorization"))
            if action == "metadata":
                return _json(200, json_bytes(model.dataplane.metadata()))
            return self._infer(model, request, body, started)
        except HTTPError as e:
            status, code, message, extra = e.status, e.code, e.message, list(e.headers.items())
        except InferenceError as e:
            status, code, message, extra = e.status, e.code, e.message, []
            if status >= 500:
                self._log_internal(request, e)
                message = "internal error; see the server log"
        except Exception as e:
            status, code, message, extra = 500, "internal_error", "internal error; see the server log", []
            self._log_internal(request, e)
        self.metrics.errors.inc(model.name if model is not None else "", code)
        if infer and model is not None:
            self._count_request(model, request, status, started)
        return status, [("Content-Type", _JSON), *extra], [error_body(message)]

    def _server_route(self, request: Request) -> Response:
        path = request.path
        if path == ("v2", "health", "live"):
            _only(request, "GET")
            return _json(200, b'{"live":true}')
        if path == ("v2", "health", "ready"):
            _only(request, "GET")
            if self._stopping:
                return _json(503, error_body("shutting down"))
            return _json(200, b'{"ready":true}')
        if path == ("v2",):
            _only(request, "GET")
            return _json(200, self._server_metadata)
        if path == ("metrics",):
            _only(request, "GET")
            text = self.metrics.render().encode("utf-8")
            return 200, [("Content-Type", METRICS_CONTENT_TYPE)], [text]
        raise HTTPError(404, "not_found", f"no route for {one_line(request.target)[:100]!r}")

    # -- inference ------------------------------------------------------------------------

    def _infer(self, model: ServedModel, request: Request, body: bytearray, started: float) -> Response:
        encoding = request.headers.get("content-encoding")
        if encoding is not None and encoding.strip().lower() != "identity":
            raise HTTPError(415, "unsupported_encoding", "compressed request bodies are not accepted")
        view = memoryview(body)
        header_length = request.headers.get(BINARY_HEADER)
        if header_length is None:
            json_part, binary = view, view[:0]
        else:
            if not header_length.isdigit() or not header_length.isascii() or int(header_length) > len(body):
                raise HTTPError(
                    400,
                    "bad_request",
                    f"Inference-Header-Content-Length {header_length[:20]!r} is not a length within "
                    f"the {len(body)}-byte body",
                )
            split = int(header_length)
            json_part, binary = view[:split], view[split:]
        payload = parse_json(json_part)
        self.metrics.in_flight.add(1)
        # A dynamic batcher bounds its own model calls (max_concurrent_batches); holding a worker
        # slot while a request waits in its queue would cap every batch at the worker count.
        batched = isinstance(model.dataplane.predictor, DynamicBatcher)
        slots = contextlib.nullcontext() if batched else self._slots
        try:
            with slots:
                result = model.dataplane.run(payload, binary=binary)
        finally:
            self.metrics.in_flight.add(-1)
        header = json_bytes(result.response)
        if result.binary:
            headers = [
                ("Content-Type", "application/octet-stream"),
                ("Inference-Header-Content-Length", str(len(header))),
            ]
            response: Response = (200, headers, [header, result.binary])
        else:
            response = (200, [("Content-Type", _JSON)], [header])
        self._count_request(model, request, 200, started)
        return response

    def _count_request(self, model: ServedModel, request: Request, status: int, started: float) -> None:
        encoding = "binary" if BINARY_HEADER in request.headers else "json"
        self.metrics.requests.inc(model.name, encoding, str(status))
        self.metrics.request_seconds.observe(time.perf_counter() - started, model.name)

    # -- helpers --------------------------------------------------------------------------

    def _send_error(self, sock: socket.socket, error: HTTPError) -> None:
        self.metrics.errors.inc("", error.code)
        headers = [("Content-Type", _JSON), *error.headers.items(), ("Connection", "close")]
        with contextlib.suppress(OSError):
            _send(sock, error.status, headers, [error_body(error.message)])

    def _log_internal(self, request: Request, error: BaseException) -> None:
        self.log.error(
            "internal error",
            method=request.method,
            path=request.target[:200],
            error=f"{type(error).__name__}: {one_line(str(error))}",
            traceback="".join(traceback.format_exception(error)),
        )


def _model_action(request: Request) -> tuple[str | None, str]:
    """``/v2/models/{name}[/versions/{v}][/ready|/infer]``: (version, action), method checked."""
    rest = request.path[3:]
    version = None
    if rest[:1] == ("versions",) and len(rest) >= 2:
        version, rest = rest[1], rest[2:]
    if rest not in ((), ("ready",), ("infer",)):
        raise HTTPError(404, "not_found", f"no route for {one_line(request.target)[:100]!r}")
    action = rest[0] if rest else "metadata"
    _only(request, "POST" if action == "infer" else "GET")
    return version, action


def _only(request: Request, method: str) -> None:
    if request.method != method:
        raise HTTPError(
            405, "method_not_allowed", f"method {request.method[:20]} not allowed; use {method}",
            headers={"Allow": method},
        )  # fmt: skip


def _json(status: int, body: bytes) -> Response:
    return status, [("Content-Type", _JSON)], [body]


def _send(
    sock: socket.socket,
    status: int,
    headers: list[tuple[str, str]],
    parts: Sequence[bytes | bytearray | memoryview],
) -> None:
    length = sum(len(p) for p in parts)
    head = response_head(status, headers, length)
    if length <= SEND_JOIN_LIMIT:
        sock.sendall(b"".join((head, *parts)))
        return
    sock.sendall(head)
    for part in parts:
        sock.sendall(part)


def _set_timeouts(sock: socket.socket, seconds: float) -> None:
    """Kernel-side receive/send timeouts on a blocking socket: each recv and send is then one
    system call (Python's own socket timeout polls before every one). Expiry raises
    ``BlockingIOError``. Where the options cannot be set, Python's timeout does the job."""
    whole = int(seconds)
    timeval = struct.pack("ll", whole, int((seconds - whole) * 1e6))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    except (OSError, AttributeError):
        sock.settimeout(seconds)


def _close_quietly(sock: socket.socket, how: int) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(how)


def _drain_briefly(sock: socket.socket) -> None:
    """After refusing a body unread: stop sending, and read (and drop) what the client is
    still sending for a moment, so that closing does not reset the connection before the
    client has read the answer."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(0.2)
        deadline = time.monotonic() + 1.0
        received = 0
        while time.monotonic() < deadline and received < (4 << 20):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += len(chunk)
    except OSError:
        pass


# -- command line -------------------------------------------------------------------------


class _ConfigError(Exception):
    pass


def _env(environ: Mapping[str, str], name: str, kind: type, default: Any) -> Any:
    text = environ.get(name, "")
    if not text.strip():
        return default
    try:
        return kind(text)
    except ValueError:
        raise _ConfigError(f"{name}={text!r} is not a valid {kind.__name__}") from None


def parse_args(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> ServerConfig:
    """``ServerConfig`` from the command line over ``environ``; ``SystemExit(2)`` when invalid."""
    environ = os.environ if environ is None else environ
    defaults = ServerConfig(roots=())
    parser = argparse.ArgumentParser(
        prog="python -m edgepack_runtime.http_server",
        description="Serve edgepack artifacts over the Open Inference Protocol (KServe v2).",
    )
    try:
        parser.add_argument("roots", nargs="+", type=Path, metavar="ROOT", help="artifact directories")
        parser.add_argument("--host", default=environ.get("EDGEPACK_HOST") or defaults.host)
        parser.add_argument(
            "--port", type=int, default=_env(environ, "EDGEPACK_PORT", int, defaults.port),
            help="0 picks a free port (logged)",
        )  # fmt: skip
        parser.add_argument(
            "--workers", type=int, default=_env(environ, "EDGEPACK_WORKERS", int, defaults.workers),
            help="concurrent inferences (default: CPUs)",
        )  # fmt: skip
        parser.add_argument(
            "--max-body-bytes", type=int,
            default=_env(environ, "EDGEPACK_MAX_BODY_BYTES", int, defaults.max_body_bytes),
        )  # fmt: skip
        parser.add_argument(
            "--max-connections", type=int,
            default=_env(environ, "EDGEPACK_MAX_CONNECTIONS", int, defaults.max_connections),
        )  # fmt: skip
        parser.add_argument(
            "--grace-seconds", type=float,
            default=_env(environ, "EDGEPACK_GRACE_SECONDS", float, defaults.grace_seconds),
        )  # fmt: skip
        parser.add_argument(
            "--keep-alive-seconds", type=float, default=defaults.keep_alive_seconds,
            help="close idle connections after this",
        )  # fmt: skip
        parser.add_argument(
            "--auth-tokens", type=Path, default=environ.get("EDGEPACK_AUTH_TOKENS") or None,
            help="JSON: model name (or *) -> sha256 hex digests of accepted bearer tokens",
        )  # fmt: skip
        parser.add_argument("--access-log", action="store_true", help="log every request")
    except _ConfigError as e:
        parser.error(str(e))
    args = parser.parse_args(list(argv))
    if not 0 <= args.port <= 65535:
        parser.error("--port must be 0..65535")
    for flag in ("workers", "max_body_bytes", "max_connections"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    if args.grace_seconds < 0 or args.keep_alive_seconds <= 0:
        parser.error("--grace-seconds must be >= 0 and --keep-alive-seconds > 0")
    return ServerConfig(
        roots=tuple(args.roots),
        host=args.host,
        port=args.port,
        workers=args.workers,
        max_body_bytes=args.max_body_bytes,
        max_connections=args.max_connections,
        grace_seconds=args.grace_seconds,
        keep_alive_seconds=args.keep_alive_seconds,
        auth_tokens=args.auth_tokens,
        access_log=args.access_log,
    )


def probe(host: str = "127.0.0.1", port: int = 8080, timeout: float = 3.0) -> int:
    """0 when the server at ``host:port`` answers ``/v2/health/ready`` with 200, else 1."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/v2/health/ready", timeout=timeout) as answer:
            return 0 if answer.status == 200 else 1
    except (urllib.error.URLError, OSError, ValueError):
        return 1


def _probe_main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgepack_runtime.http_server probe")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(environ.get("EDGEPACK_PORT") or 8080))
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(list(argv))
    return probe(args.host, args.port, args.timeout)


def build_server(
    config: ServerConfig, log: JsonLog | None = None, extra_sinks: Sequence[Sink] = ()
) -> InferenceServer:
    """Load the models and bind the socket (``ModelLoadError`` / ``OSError`` on failure).
    ``extra_sinks`` get every model's telemetry too (the device's spool, for one)."""
    log = log if log is not None else JsonLog()
    auth = BearerAuth.load(config.auth_tokens) if config.auth_tokens is not None else None
    metrics = ServerMetrics()

    def log_loaded(event: TelemetryEvent) -> None:
        if event.name == MODEL_LOADED:
            log.info("model loaded", **dict(event.fields))

    def sinks(name: str, telemetry: Telemetry) -> list[Sink]:
        return [metrics.sink(name, telemetry), log_loaded, *extra_sinks]

    registry = ModelRegistry.load(config.roots, sinks)
    if auth is not None:
        for name in auth.models_without_tokens(registry.names):
            log.warning("no token accepted for this model: every inference will be refused", model=name)
    return InferenceServer(registry, config, metrics=metrics, auth=auth, log=log)


def main(argv: Sequence[str] | None = None, *, extra_sinks: Sequence[Sink] = ()) -> int:
    """Run the server (or ``probe``); returns the exit code: 0 ok, 1 failure, 2 bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ
    try:
        if argv[:1] == ["probe"]:
            return _probe_main(argv[1:], environ)
        config = parse_args(argv, environ)
    except SystemExit as e:  # argparse: usage already printed
        return e.code if isinstance(e.code, int) else 2
    log = JsonLog()
    try:
        server = build_server(config, log, extra_sinks)
    except DuplicateModelError as e:
        log.error("duplicate model name", error=e.message)
        return 2
    except ModelLoadError as e:
        log.error("cannot load the models", error=e.message)
        return 2
    except OSError as e:
        log.error("cannot listen", host=config.host, port=config.port, error=one_line(str(e)))
        return 1

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: server.shutdown())
    host, port = server.address
    log.info(
        "listening",
        host=host,
        port=port,
        models=[
            {"name": m.name, "version": m.version, "backend": m.backend, "root": str(m.root)}
            for m in server.registry
        ],
        workers=config.workers,
        max_connections=config.max_connections,
        max_body_bytes=config.max_body_bytes,
        auth="bearer" if server.auth is not None else "none",
    )
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
