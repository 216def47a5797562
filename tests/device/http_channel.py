"""A channel served over HTTP on 127.0.0.1 by the tests: a directory behind a small threading
server that honours ``Range``, logs every request, and can be told to cut a response
mid-way (to prove resumption) or to serve other bytes than the file's (to prove refusal)."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"^bytes=(\d+)-$")


@dataclass(frozen=True)
class Request:
    path: str
    range: str | None
    status: int
    sent: int  # body bytes written


@dataclass
class ChannelServer:
    root: Path
    url: str = ""
    log: list[Request] = field(default_factory=list)
    # path -> bytes of the body to send before dropping the connection (once per entry)
    cut_after: dict[str, int] = field(default_factory=dict)
    # path -> bytes served instead of the file's
    replace: dict[str, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def requests_for(self, suffix: str) -> list[Request]:
        with self.lock:
            return [r for r in self.log if r.path.endswith(suffix)]

    def body_bytes(self) -> int:
        with self.lock:
            return sum(r.sent for r in self.log)


def _handler(server: ChannelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            rng = self.headers.get("Range")
            with server.lock:
                data = server.replace.get(path)
                cut = server.cut_after.pop(path, None)
            if data is None:
                file = (server.root / path.lstrip("/")).resolve()
                if server.root.resolve() not in file.parents or not file.is_file():
                    self._record(path, rng, 404, 0)
                    self.send_error(404)
                    return
                data = file.read_bytes()
            start = 0
            status = 200
            match = _RANGE.match(rng or "")
            if match is not None:
                start = int(match.group(1))
                if start >= len(data):
                    self._record(path, rng, 416, 0)
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            body = data[start:]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if cut is not None:
                body = body[:cut]
            self.wfile.write(body)
            self.wfile.flush()
            self._record(path, rng, status, len(body))
            if cut is not None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)

        def _record(self, path: str, rng: str | None, status: int, sent: int) -> None:
            with server.lock:
                server.log.append(Request(path, rng, status, sent))

    return Handler


@contextlib.contextmanager
def serving(root: Path) -> Iterator[ChannelServer]:
    """Serve ``root`` on 127.0.0.1 (a free port) until the block ends."""
    state = ChannelServer(root=root)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
