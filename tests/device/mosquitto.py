"""A real mosquitto broker on 127.0.0.1 for the tests: started and stopped by them.

``Broker.stop()`` / ``start()`` restart it on the same port with the same persistence file,
so a subscriber's session (clean_session=False, QoS 1) and its queued messages survive.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_tls(directory: Path, client_cn: str = "dev-1") -> TlsFiles:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=edgepack-test-ca",
        "-days",
        "2",
    )
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, cn in (("server", "127.0.0.1"), ("client", client_cn)):
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        ext = ["-extfile", "server.ext"] if name == "server" else []
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", *ext)  # fmt: skip
    return TlsFiles(
        directory / "ca.crt", directory / "server.crt", directory / "server.key",
        directory / "client.crt", directory / "client.key",
    )  # fmt: skip


class Broker:
    def __init__(self, directory: Path, port: int | None = None, tls: TlsFiles | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.config = directory / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            *(
                [
                    f"cafile {tls.ca}",
                    f"certfile {tls.server_cert}",
                    f"keyfile {tls.server_key}",
                    "require_certificate true",
                    "use_identity_as_username true",
                ]
                if tls is not None
                else []
            ),
            "persistence true",
            f"persistence_location {directory}/",
            "autosave_interval 0",
            "max_queued_messages 100000",
            f"log_dest file {directory}/mosquitto.log",
        ]
        if os.geteuid() == 0:  # otherwise it drops to user mosquitto and cannot write here
            lines.append("user root")
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([exe, "-c", str(self.config)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited {self.process.returncode}: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # saves the persistence file
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


class Subscriber:
    """A paho subscriber with a persistent session that collects every message's JSON."""

    def __init__(self, port: int, topic: str, client_id: str = "test-subscriber") -> None:
        import json

        import paho.mqtt.client as mqtt

        self.messages: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=False
        )
        client.reconnect_delay_set(0.05, 0.2)

        def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            if not reason.is_failure:
                c.subscribe(topic, qos=1)

        def on_subscribe(c: Any, userdata: Any, mid: Any, reasons: Any, properties: Any) -> None:
            self._subscribed.set()

        def on_message(c: Any, userdata: Any, message: Any) -> None:
            with self._changed:
                self.messages.append(json.loads(message.payload))
                self._changed.notify_all()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect("127.0.0.1", port, keepalive=5)
        client.loop_start()
        self.client = client
        if not self._subscribed.wait(10):
            raise RuntimeError("subscriber got no SUBACK")

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; got {len(self.messages)} messages")
                self._changed.wait(left)
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(name="mosquitto")
def mosquitto_fixture(tmp_path: Path) -> Iterator[Broker]:
    """A running broker (anonymous, 127.0.0.1, a free port); stopped afterwards."""
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.fail("mosquitto is not installed (scripts/setup.sh installs it)")
    broker = Broker(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
