"""Helpers for the HTTP server tests: a server in a subprocess, raw HTTP over a socket."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime_helpers import REPO_ROOT

_SERVER = [sys.executable, "-m", "edgepack.runtime.http_server"]


@dataclass
class ServerProcess:
    """``python -m edgepack.runtime.http_server`` in a subprocess; logs go to a file."""

    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    command: list[str] = field(default_factory=lambda: list(_SERVER))  # what runs, before ``args``

    def start(self, timeout: float = 90.0) -> ServerProcess:
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = str(REPO_ROOT)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*self.command, *self.args],
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=REPO_ROOT,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.logs():
                if record.get("msg") == "listening":
                    self.port = int(record["port"])
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited {self.proc.returncode}: {self.log_path.read_text()[-3000:]}"
                )
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def logs(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        return records

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise

    def __enter__(self) -> ServerProcess:
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


def run_server(*args: str, log_path: Path, env: dict[str, str] | None = None) -> ServerProcess:
    """A started server on a free port (``--port 0``)."""
    return ServerProcess([*args, "--port", "0"], log_path, env or {}).start()


def run_main(*args: str, cwd: Path = REPO_ROOT, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run the server's ``main`` to completion (for refusals at startup, ``probe``)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [*_SERVER, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


def renamed_artifact(src: Path, dest: Path, name: str, version: str = "1.0.0") -> Path:
    """A copy of the artifact at ``src`` whose manifest names another model."""
    shutil.copytree(src, dest)
    manifest = json.loads((dest / "edgepack.json").read_text())
    manifest["name"], manifest["version"] = name, version
    (dest / "edgepack.json").write_text(json.dumps(manifest, indent=1))
    return dest


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawClient:
    """HTTP/1.1 over one socket, bytes in and out, for requests no polite client sends."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buf = b""

    def connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buf = b""
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self.buf = b""

    def send(self, data: bytes, *, end_input: bool = False) -> None:
        sock = self.connect()
        sock.sendall(data)
        if end_input:
            sock.shutdown(socket.SHUT_WR)

    def _fill(self) -> bool:
        assert self.sock is not None
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def read_response(self) -> RawResponse:
        """The next response; the socket is closed after it if the server says so."""
        self.connect()
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"connection closed before a response: {self.buf[:200]!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status == 100:
            return self.read_response()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            if not self._fill():
                raise ConnectionError("connection closed mid-body")
        body, self.buf = self.buf[:length], self.buf[length:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return RawResponse(status, headers, body)

    def request(self, data: bytes, *, end_input: bool = False) -> RawResponse:
        self.send(data, end_input=end_input)
        return self.read_response()


def http_request(
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    length: bool = True,
) -> bytes:
    """A well-formed request's bytes (``length=False`` leaves out Content-Length)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if length and (body or method == "POST"):
        lines.append(f"Content-Length: {len(body)}")
    lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
