"""Telemetry uplink to an MQTT broker: QoS 1, each message's PUBACK awaited before the
spool forgets it, so a broker that goes away loses nothing (delivery is at least once:
the spool's ``seq`` lets a receiver drop duplicates).

paho-mqtt is imported when the first connection is made, so a device without MQTT never
needs it. On any failure the connection is torn down (paho's own queue of unacknowledged
messages with it) and the next ``send`` reconnects; ``pump`` spaces the attempts with a
capped exponential backoff.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .uplink import UplinkError

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883


def events_topic(device_id: str) -> str:
    """The topic a device publishes its events on: ``edgepack/<device_id>/events``."""
    if not device_id or any(c in device_id for c in "/+#\0"):
        raise ValueError(f"device id {device_id!r} cannot be part of an MQTT topic")
    return f"edgepack/{device_id}/events"


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int = DEFAULT_PORT
    device_id: str = "device"
    topic: str = ""  # default: events_topic(device_id)
    tls_ca: Path | None = None  # set to use TLS (the broker's CA)
    tls_cert: Path | None = None  # client certificate and key, for mutual TLS
    tls_key: Path | None = None
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    timeout_s: float = 10.0  # for the connection and for each PUBACK

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("a client certificate needs its key, and a key its certificate")
        if self.tls_cert is not None and self.tls_ca is None:
            raise ValueError("a client certificate needs tls_ca (the broker's CA) as well")
        if not 0 < self.port < 65536:
            raise ValueError(f"MQTT port {self.port} is not 1..65535")
        events_topic(self.device_id)

    @property
    def events_topic(self) -> str:
        return self.topic or events_topic(self.device_id)


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:PORT`` for IPv6) as (host, port)."""
    host, sep, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not sep:
        host, port = text, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host, int(port)


class MqttUplink:
    """``send(events)`` publishes each event as one JSON message and returns once the broker
    has acknowledged all of them; raises ``UplinkError`` otherwise."""

    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        self._client: Any = None
        self._connected = threading.Event()
        self._lock = threading.Lock()

    def send(self, events: list[dict[str, Any]]) -> None:
        with self._lock:
            client = self._connect()
            try:
                infos = [
                    client.publish(
                        self.settings.events_topic,
                        json.dumps(e, separators=(",", ":"), default=str),
                        qos=1,
                    )
                    for e in events
                ]
                deadline = time.monotonic() + self.settings.timeout_s
                for info in infos:  # in order: the broker acknowledges in order too
                    while not info.is_published():
                        if not self._connected.is_set():
                            raise UplinkError("connection to the MQTT broker lost")
                        if time.monotonic() > deadline:
                            raise UplinkError("no PUBACK from the MQTT broker in time")
                        info.wait_for_publish(0.05)
            except (RuntimeError, ValueError, OSError, UplinkError) as e:
                self._reset()
                raise e if isinstance(e, UplinkError) else UplinkError(f"MQTT publish failed: {e}") from e

    def _connect(self) -> Any:
        if self._client is not None and self._connected.is_set():
            return self._client
        self._reset()
        import paho.mqtt.client as mqtt  # lazily: only devices that use MQTT carry paho

        s = self.settings
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=s.device_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if s.tls_ca is not None:
            client.tls_set(
                ca_certs=str(s.tls_ca),
                certfile=str(s.tls_cert) if s.tls_cert else None,
                keyfile=str(s.tls_key) if s.tls_key else None,
            )
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        refused: list[str] = []

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            if reason.is_failure:
                refused.append(str(reason))
            else:
                self._connected.set()

        def on_disconnect(client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            self._connected.clear()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        self._client = client
        try:
            client.connect(s.host, s.port, keepalive=s.keepalive_s)
        except (OSError, ValueError) as e:
            self._reset()
            raise UplinkError(f"cannot connect to the MQTT broker at {s.host}:{s.port}: {e}") from e
        client.loop_start()
        deadline = time.monotonic() + s.timeout_s
        while not self._connected.wait(0.05):
            if refused or time.monotonic() > deadline:
                self._reset()
                why = f"refused: {refused[0]}" if refused else "no CONNACK in time"
                raise UplinkError(f"MQTT broker at {s.host}:{s.port} {why}")
        return client

    def _reset(self) -> None:
        """Drop the connection and paho's unacknowledged messages (the spool still has them)."""
        client, self._client = self._client, None
        self._connected.clear()
        if client is None:
            return
        with contextlib.suppress(Exception):  # already broken: nothing more to do
            client.disconnect()
        client.loop_stop()

    def close(self) -> None:
        with self._lock:
            self._reset()
