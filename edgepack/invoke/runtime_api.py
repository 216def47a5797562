"""A local AWS Lambda Runtime API (the part of Lambda's RAPID a runtime talks to).

The function's runtime (awslambdaric, whose native client speaks HTTP/1.1 with
keep-alive through libcurl) polls ``GET /2018-06-01/runtime/invocation/next``, which
blocks until an event is queued, then posts the result to
``.../invocation/{id}/response`` or ``.../invocation/{id}/error``; an import failure
goes to ``/2018-06-01/runtime/init/error``. Paths, headers, status codes and the
6 MB payload limits follow Lambda's Runtime API reference.

The server binds 127.0.0.1 only and serves one function (one execution environment):
one invocation at a time, in the order queued. Everything the invoker measures is
stamped here, on the server thread, the moment the request arrives: the first
``/next`` (end of init), the hand-out of an event and the arrival of its result.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_PREFIX = "/2018-06-01/runtime"
NEXT_PATH = f"{API_PREFIX}/invocation/next"
INIT_ERROR_PATH = f"{API_PREFIX}/init/error"
INVOCATION_PREFIX = f"{API_PREFIX}/invocation/"

ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"

# Lambda's synchronous invoke limits: the request (event) and the response payload.
MAX_EVENT_BYTES = 6_291_456
MAX_RESPONSE_BYTES = 6_291_556

_POLL_S = 0.05


@dataclass
class Invocation:
    """One event handed to the function, and what came back."""

    request_id: str
    event: bytes
    timeout_ms: int
    function_arn: str
    trace_id: str
    client_context: str | None = None
    # Filled in by the server.
    deadline_ms: int | None = None  # epoch ms, sent as Lambda-Runtime-Deadline-Ms
    handed_out_at: float | None = None  # perf_counter() when /next returned the event
    finished_at: float | None = None  # perf_counter() when the result body was read
    outcome: str | None = None  # "response" | "error"
    body: bytes = b""
    error_type: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False)


@dataclass
class InitError:
    body: bytes
    error_type: str | None
    at: float  # perf_counter()


Hook = Callable[[Invocation], None]


class RuntimeAPIServer:
    """Lambda Runtime API for one execution environment, on 127.0.0.1 and a free port.

    ``on_handout`` runs on the server thread just before an event is returned from
    ``/next``; ``on_result`` just after a result body is read and before the runtime is
    answered (the function process is still alive and blocked, so its memory and logs
    can be read at that instant). ``on_init_error`` likewise for ``/init/error``.
    """

    def __init__(
        self,
        *,
        on_handout: Hook | None = None,
        on_result: Hook | None = None,
        on_init_error: Callable[[InitError], None] | None = None,
    ) -> None:
        self.on_handout = on_handout
        self.on_result = on_result
        self.on_init_error = on_init_error
        self.first_next_at: float | None = None
        self.init_error: InitError | None = None
        self.init_error_event = threading.Event()
        self._pending: queue.Queue[Invocation] = queue.Queue()
        self._invocations: dict[str, Invocation] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.api = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="lambda-runtime-api", daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> str:
        """``host:port``, the value of ``AWS_LAMBDA_RUNTIME_API``."""
        host, port = self._httpd.server_address[:2]
        return f"{host!s}:{port}"

    def submit(self, invocation: Invocation) -> None:
        """Queue an event; the next ``/next`` hands it out."""
        with self._lock:
            self._invocations[invocation.request_id] = invocation
        self._pending.put(invocation)

    def reset_environment(self) -> None:
        """Forget init state and queued events: a new execution environment starts."""
        with self._lock:
            self.first_next_at = None
            self.init_error = None
            self.init_error_event.clear()
            while True:
                try:
                    self._pending.get_nowait()
                except queue.Empty:
                    break

    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RuntimeAPIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- called by the request handler ------------------------------------------------

    def _next(self) -> Invocation | None:
        now = time.perf_counter()
        with self._lock:
            if self.first_next_at is None:
                self.first_next_at = now
        while not self._closing.is_set():
            try:
                invocation = self._pending.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if invocation.done.is_set():  # given up on by the invoker before hand-out
                continue
            invocation.deadline_ms = int(time.time() * 1000) + invocation.timeout_ms
            if self.on_handout is not None:
                self.on_handout(invocation)
            invocation.handed_out_at = time.perf_counter()
            return invocation
        return None

    def _result(self, request_id: str, outcome: str, body: bytes, error_type: str | None) -> tuple[int, Any]:
        finished = time.perf_counter()
        with self._lock:
            invocation = self._invocations.get(request_id)
            if invocation is None or invocation.handed_out_at is None:
                return HTTPStatus.BAD_REQUEST, _error_body(
                    "InvalidRequestID", f"Invalid request ID: {request_id!r}"
                )
            if invocation.outcome is not None:
                return HTTPStatus.FORBIDDEN, _error_body(
                    "InvalidStateTransition", f"Result of request {request_id} already posted"
                )
            status: int = HTTPStatus.ACCEPTED
            answer: Any = {"status": "OK"}
            if outcome == "response" and len(body) > MAX_RESPONSE_BYTES:
                # What Lambda answers the runtime and the caller for an oversized response.
                message = (
                    f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload "
                    f"size ({MAX_RESPONSE_BYTES} bytes)."
                )
                outcome, error_type = "error", "Function.ResponseSizeTooLarge"
                body = json.dumps({"errorMessage": message, "errorType": error_type}).encode()
                status, answer = (
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    _error_body("RequestEntityTooLarge", message),
                )
            invocation.outcome = outcome
            invocation.body = body
            invocation.error_type = error_type
            invocation.finished_at = finished
        if self.on_result is not None:
            self.on_result(invocation)
        invocation.done.set()
        return status, answer

    def _init_error(self, body: bytes, error_type: str | None) -> tuple[int, Any]:
        error = InitError(body=body, error_type=error_type, at=time.perf_counter())
        with self._lock:
            if self.init_error is not None:
                return HTTPStatus.FORBIDDEN, _error_body(
                    "InvalidStateTransition", "init error already posted"
                )
            self.init_error = error
        if self.on_init_error is not None:
            self.on_init_error(error)
        self.init_error_event.set()
        return HTTPStatus.ACCEPTED, {"status": "OK"}


def _error_body(error_type: str, message: str) -> dict[str, str]:
    return {"errorMessage": message, "errorType": error_type}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = False
    api: RuntimeAPIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The function process is killed at the end of every run, often mid-request.
        pass


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1: keep-alive and 100-continue, as libcurl in awslambdaric's native client expects.
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; with Nagle on, the body would wait for
    # the runtime's delayed ACK (~40 ms) and show up in the measured Duration.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the function's own logs are what the user reads

    def do_GET(self) -> None:
        self._drain_body()
        if self.path != NEXT_PATH:
            self._send_json(
                HTTPStatus.NOT_FOUND, _error_body("NotFound", f"no such endpoint: GET {self.path}")
            )
            return
        invocation = self.server.api._next()
        if invocation is None:  # server closing
            self._send_json(HTTPStatus.GONE, _error_body("ShuttingDown", "execution environment shut down"))
            return
        headers = {
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
            "Lambda-Runtime-Trace-Id": invocation.trace_id,
        }
        if invocation.client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = invocation.client_context
        self._send(HTTPStatus.OK, invocation.event, "application/json", headers)

    def do_POST(self) -> None:
        body = self._drain_body()
        error_type = self.headers.get(ERROR_TYPE_HEADER)
        api = self.server.api
        if self.path == INIT_ERROR_PATH:
            status, answer = api._init_error(body, error_type)
        elif self.path.startswith(INVOCATION_PREFIX) and self.path.endswith(("/response", "/error")):
            request_id, _, kind = self.path[len(INVOCATION_PREFIX) :].rpartition("/")
            status, answer = api._result(request_id, kind, body, error_type)
        else:
            status, answer = (
                HTTPStatus.NOT_FOUND,
                _error_body("NotFound", f"no such endpoint: POST {self.path}"),
            )
        self._send_json(status, answer)

    def _drain_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", {})

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
