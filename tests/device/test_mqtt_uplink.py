"""Spooled telemetry to a real mosquitto broker (and to an HTTP endpoint)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgepack.runtime.device.spool import DROPPED_EVENT, Spool, spool_sink
from edgepack.runtime.device.uplink import Backoff, UplinkError, pump
from edgepack.runtime.device.uplink_http import HttpSettings, HttpUplink
from edgepack.runtime.device.uplink_mqtt import MqttSettings, MqttUplink, events_topic, parse_address
from edgepack.runtime.telemetry import Telemetry
from tests.device.mosquitto import Broker, Subscriber, free_port, make_tls, mosquitto_fixture  # noqa: F401

DIGEST = "ab" * 32
VERSION = "1.4.0"
TOPIC = events_topic("dev-1")


def _uplink(port: int) -> MqttUplink:
    return MqttUplink(MqttSettings(host="127.0.0.1", port=port, device_id="dev-1", timeout_s=5))


def _telemetry(spool: Spool) -> Telemetry:
    return Telemetry([spool_sink(spool, artifact_digest=DIGEST, version=VERSION)])


def _unique_in_order(messages: list[dict[str, Any]]) -> list[int]:
    """Sequence numbers, a resent duplicate (QoS 1 is at least once) counted once."""
    seen: set[int] = set()
    out: list[int] = []
    for m in messages:
        if m.get("event") != DROPPED_EVENT and m["seq"] not in seen:
            seen.add(m["seq"])
            out.append(m["seq"])
    return out


@pytest.fixture
def subscriber(mosquitto: Broker) -> Iterator[Subscriber]:
    sub = Subscriber(mosquitto.port, TOPIC)
    yield sub
    sub.close()


def test_events_arrive_in_order_with_digest_and_version(
    tmp_path: Path,
    mosquitto: Broker,
    subscriber: Subscriber,
) -> None:
    with Spool(tmp_path / "spool") as spool:
        telemetry = _telemetry(spool)
        for n in range(300):
            telemetry.emit("inference", n=n, latency_ms=0.5)
        uplink = _uplink(mosquitto.port)
        try:
            assert spool.drain(uplink.send, batch=64) == 300
        finally:
            uplink.close()
        assert spool.pending() == 0
    got = subscriber.wait_for(lambda m: len(m) >= 300)
    assert [m["seq"] for m in got] == list(range(1, 301))
    assert [m["n"] for m in got] == list(range(300))
    assert all(m["artifact_digest"] == DIGEST and m["version"] == VERSION for m in got)


def test_a_broker_restart_mid_stream_loses_nothing(
    tmp_path: Path,
    mosquitto: Broker,
    subscriber: Subscriber,
) -> None:
    total = 600
    errors: list[BaseException] = []
    stop = threading.Event()
    uplink = _uplink(mosquitto.port)
    with Spool(tmp_path / "spool", segment_bytes=4096) as spool:
        telemetry = _telemetry(spool)
        drainer = threading.Thread(
            target=pump,
            args=(spool, uplink.send, stop),
            kwargs={
                "backoff": Backoff(initial=0.05, cap=0.4),
                "idle_s": 0.02,
                "batch": 25,
                "on_error": errors.append,
                "reconnect": uplink.close,
            },
        )
        drainer.start()
        try:
            for n in range(200):
                telemetry.emit("inference", n=n)
            subscriber.wait_for(lambda m: len(m) >= 100)
            mosquitto.stop()  # mid-stream: some of the first 200 may still be in the spool
            for n in range(200, 500):
                telemetry.emit("inference", n=n)  # spooled while the broker is down
            while not errors:
                stop.wait(0.05)
            assert spool.pending() > 0
            mosquitto.start()
            for n in range(500, total):
                telemetry.emit("inference", n=n)
            got = subscriber.wait_for(lambda m: len(_unique_in_order(m)) >= total, timeout=60)
        finally:
            stop.set()
            drainer.join(30)
            uplink.close()
        assert spool.pending() == 0 and spool.dropped == 0
    assert all(isinstance(e, UplinkError) for e in errors)
    assert _unique_in_order(got) == list(range(1, total + 1))  # none lost, in order
    by_seq = {m["seq"]: m for m in got}
    assert [by_seq[s]["n"] for s in range(1, total + 1)] == list(range(total))
    assert all(m["artifact_digest"] == DIGEST and m["version"] == VERSION for m in got)


def test_the_dropped_count_is_reported_when_the_bound_is_passed_while_the_broker_is_down(
    tmp_path: Path,
    mosquitto: Broker,
    subscriber: Subscriber,
) -> None:
    mosquitto.stop()
    uplink = _uplink(mosquitto.port)
    labels = {"artifact_digest": DIGEST, "version": VERSION}
    with Spool(tmp_path / "spool", max_bytes=16 << 10, labels=labels) as spool:
        telemetry = _telemetry(spool)
        for n in range(1000):
            telemetry.emit("inference", n=n)
        with pytest.raises(UplinkError, match="cannot connect"):
            spool.drain(uplink.send)
        dropped, kept = spool.dropped, spool.pending()
        assert dropped > 0 and dropped + kept == 1000
        mosquitto.start()
        try:
            spool.drain(uplink.send)
        finally:
            uplink.close()
    got = subscriber.wait_for(lambda m: len(m) >= kept + 1)
    assert got[0]["event"] == DROPPED_EVENT
    assert got[0]["dropped"] == dropped and got[0]["dropped_total"] == dropped
    assert got[0]["artifact_digest"] == DIGEST and got[0]["version"] == VERSION
    assert [m["n"] for m in got[1:]] == list(range(dropped, 1000))  # the newest, in order
    assert all(m["artifact_digest"] == DIGEST and m["version"] == VERSION for m in got)


def test_mutual_tls_with_the_devices_own_certificate(tmp_path: Path) -> None:
    """DESIGN: devices talk to brokers over TLS with their own certificates."""
    tls = make_tls(tmp_path / "pki")
    broker = Broker(tmp_path / "broker", tls=tls)
    broker.start()
    try:
        received: list[bytes] = []
        got = threading.Event()
        import paho.mqtt.client as mqtt

        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tls-sub")
        sub.tls_set(ca_certs=str(tls.ca), certfile=str(tls.client_cert), keyfile=str(tls.client_key))
        subscribed = threading.Event()
        sub.on_connect = lambda c, u, f, r, p: c.subscribe(TOPIC, qos=1)
        sub.on_subscribe = lambda c, u, m, r, p: subscribed.set()
        sub.on_message = lambda c, u, m: (received.append(m.payload), len(received) >= 5 and got.set())
        sub.connect("127.0.0.1", broker.port)
        sub.loop_start()
        assert subscribed.wait(10)
        settings = MqttSettings(
            host="127.0.0.1", port=broker.port, device_id="dev-1", tls_ca=tls.ca,
            tls_cert=tls.client_cert, tls_key=tls.client_key, timeout_s=5,
        )  # fmt: skip
        uplink = MqttUplink(settings)
        with Spool(tmp_path / "spool") as spool:
            for n in range(5):
                _telemetry(spool).emit("inference", n=n)
            spool.drain(uplink.send)
            assert got.wait(10)
            # Without a client certificate the broker refuses the device: nothing is lost.
            anonymous = MqttUplink(MqttSettings(host="127.0.0.1", port=broker.port, device_id="dev-2",
                                                tls_ca=tls.ca, timeout_s=5))  # fmt: skip
            spool.append({"event": "inference", "n": 5})
            with pytest.raises(UplinkError):
                spool.drain(anonymous.send)
            assert spool.pending() == 1
            anonymous.close()
        uplink.close()
        sub.disconnect()
        sub.loop_stop()
    finally:
        broker.stop()
    assert [json.loads(p)["n"] for p in received] == list(range(5))


def test_an_unreachable_broker_keeps_everything_pending(tmp_path: Path) -> None:
    uplink = _uplink(free_port())
    with Spool(tmp_path / "spool") as spool:
        spool.append({"event": "inference"})
        with pytest.raises(UplinkError, match="cannot connect to the MQTT broker"):
            spool.drain(uplink.send)
        assert spool.pending() == 1
    uplink.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tls_cert": Path("c.pem")}, "needs its key"),
        ({"tls_key": Path("k.pem")}, "needs its key"),
        ({"tls_cert": Path("c.pem"), "tls_key": Path("k.pem")}, "needs tls_ca"),
        ({"port": 0}, "not 1..65535"),
        ({"device_id": "a/b"}, "cannot be part of an MQTT topic"),
        ({"device_id": "#"}, "cannot be part of an MQTT topic"),
        ({"device_id": ""}, "cannot be part of an MQTT topic"),
    ],
)
def test_bad_mqtt_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MqttSettings(host="127.0.0.1", **kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("broker", ("broker", 1883)), ("10.0.0.2:1884", ("10.0.0.2", 1884)), ("[::1]:8883", ("::1", 8883))],
)
def test_broker_addresses_parse(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", ":1883", "host:", "host:x", "host:70000", "host:0"])
def test_bad_broker_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address(text)


def test_backoff_grows_to_its_cap_and_resets() -> None:
    backoff = Backoff(initial=0.1, cap=1.0, jitter=0.0)
    delays = [backoff.next_delay() for _ in range(8)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
    backoff.reset()
    assert backoff.next_delay() == 0.1
    jittered = Backoff(initial=1.0, cap=1.0, jitter=0.5)
    assert all(0.5 <= jittered.next_delay() <= 1.0 for _ in range(50))
    for bad in ({"initial": 0.0}, {"initial": 2.0, "cap": 1.0}, {"factor": 0.5}, {"jitter": 1.0}):
        with pytest.raises(ValueError, match="backoff"):
            Backoff(**bad)


class _Collector(http.server.BaseHTTPRequestHandler):
    batches: list[list[dict[str, Any]]] = []
    statuses: list[int] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = self.statuses.pop(0) if self.statuses else 204
        if status == 204:
            assert self.headers["Authorization"] == "Bearer t0k"
            self.batches.append(json.loads(body)["events"])
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_http_uplink_acknowledges_on_2xx_only(tmp_path: Path) -> None:
    _Collector.batches, _Collector.statuses = [], [503, 400]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uplink = HttpUplink(HttpSettings(url=f"http://127.0.0.1:{server.server_address[1]}/ingest", token="t0k"))
    try:
        with Spool(tmp_path / "spool") as spool:
            telemetry = _telemetry(spool)
            for n in range(25):
                telemetry.emit("inference", n=n)
            for status in ("503", "400"):
                with pytest.raises(UplinkError, match=status):
                    spool.drain(uplink.send, batch=10)
                assert spool.pending() == 25
            assert spool.drain(uplink.send, batch=10) == 25
    finally:
        server.shutdown()
        server.server_close()
    assert [len(b) for b in _Collector.batches] == [10, 10, 5]
    events = [e for b in _Collector.batches for e in b]
    assert [e["n"] for e in events] == list(range(25))
    assert all(e["artifact_digest"] == DIGEST and e["version"] == VERSION for e in events)


def test_http_uplink_unreachable_and_bad_urls(tmp_path: Path) -> None:
    uplink = HttpUplink(HttpSettings(url=f"http://127.0.0.1:{free_port()}/x", timeout_s=2))
    with pytest.raises(UplinkError, match="cannot reach"):
        uplink.send([{"event": "inference"}])
    with pytest.raises(ValueError, match="http:// or https://"):
        HttpSettings(url="ftp://example/x")
