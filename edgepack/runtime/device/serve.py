"""The device runtime as a local Open Inference Protocol server, its telemetry spooled.

``python predict.py serve [SERVE FLAGS] [SERVER FLAGS]`` runs the container's server
(``http_server``, on 127.0.0.1 unless ``--host`` says otherwise) for the bundle, with one more
telemetry sink: every event, stamped with the artifact's digest and version, goes to the
on-disk spool, and a background thread drains the spool to MQTT and/or HTTP when asked.
``python predict.py telemetry-drain`` drains a spool once (for a device that serves
nothing, or cron): exit 0 when everything was delivered, 1 when the uplink failed.

Serve flags::

    --spool DIR              the spool directory (default: $EDGEPACK_SPOOL; none: no spooling)
    --spool-max-bytes N      the spool's bound (default 8 MiB)
    --device-id ID           MQTT client id and topic part (default: the host name)
    --mqtt HOST[:PORT]       drain to this broker (QoS 1), topic edgepack/<device-id>/events
    --mqtt-ca/--mqtt-cert/--mqtt-key FILE   TLS: the broker's CA; the device's cert and key
    --mqtt-username NAME     (password from $EDGEPACK_MQTT_PASSWORD)
    --http-url URL           drain to this endpoint (POST {"events": [...]})
    --http-token-file FILE   bearer token for it

Everything else is ``http_server``'s (``--port``, ``--workers``, ...).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..jsonlog import JsonLog
from ..manifest import Manifest
from ..models import artifact_digest
from .spool import Spool, SpoolError, spool_sink
from .uplink import Backoff, pump
from .uplink_http import HttpSettings, HttpUplink
from .uplink_mqtt import DEFAULT_PORT, DEFAULT_TLS_PORT, MqttSettings, MqttUplink, parse_address


def _default_device_id() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "device"


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, add_help=True)
    parser.add_argument("--spool", type=Path, default=os.environ.get("EDGEPACK_SPOOL") or None)
    parser.add_argument("--spool-max-bytes", type=int, default=8 << 20)
    parser.add_argument("--device-id", default=_default_device_id())
    parser.add_argument("--mqtt", metavar="HOST[:PORT]")
    parser.add_argument("--mqtt-ca", type=Path)
    parser.add_argument("--mqtt-cert", type=Path)
    parser.add_argument("--mqtt-key", type=Path)
    parser.add_argument("--mqtt-username")
    parser.add_argument("--http-url")
    parser.add_argument("--http-token-file", type=Path)
    return parser


Send = Callable[[list[dict[str, Any]]], Any]


def _senders(args: argparse.Namespace) -> list[tuple[Send, Callable[[], None]]]:
    """(send, close) per configured uplink; ValueError for bad settings."""
    out: list[tuple[Send, Callable[[], None]]] = []
    if args.mqtt:
        host, port = parse_address(args.mqtt, DEFAULT_TLS_PORT if args.mqtt_ca else DEFAULT_PORT)
        mqtt = MqttUplink(
            MqttSettings(
                host=host,
                port=port,
                device_id=args.device_id,
                tls_ca=args.mqtt_ca,
                tls_cert=args.mqtt_cert,
                tls_key=args.mqtt_key,
                username=args.mqtt_username,
                password=os.environ.get("EDGEPACK_MQTT_PASSWORD"),
            )
        )
        out.append((mqtt.send, mqtt.close))
    if args.http_url:
        token = args.http_token_file.read_text().strip() if args.http_token_file else None
        http = HttpUplink(HttpSettings(url=args.http_url, token=token))
        out.append((http.send, lambda: None))
    return out


def _fan_out(senders: Sequence[Send]) -> Send:
    """One send for several uplinks: a batch counts as delivered once every uplink took it."""

    def send(events: list[dict[str, Any]]) -> None:
        for s in senders:
            s(events)

    return send


def _open(root: Path, args: argparse.Namespace, log: JsonLog) -> Spool | None:
    if args.spool is None:
        return None
    version = Manifest.load(root).version
    return Spool(
        args.spool,
        args.spool_max_bytes,
        labels={"artifact_digest": artifact_digest(root)[0], "version": version},
    )


def _set_up(
    root: Path, args: argparse.Namespace, log: JsonLog
) -> tuple[Spool | None, list[tuple[Send, Callable[[], None]]]] | None:
    """The spool and the uplinks the flags ask for; ``None`` (logged) when they cannot be set up."""
    spool = None
    try:
        spool = _open(root, args, log)
        return spool, _senders(args)
    except (SpoolError, ValueError, OSError) as e:
        if spool is not None:
            spool.close()
        log.error("cannot set up telemetry", error=str(e))
        return None


def _close_all(senders: Sequence[tuple[Send, Callable[[], None]]]) -> None:
    for _, close in senders:
        close()


def serve_main(root: Path, argv: Sequence[str]) -> int:
    """``predict.py serve``: the OIP server with the spool sink and the drain thread."""
    from ..http_server import main as server_main

    args, rest = _parser("predict.py serve").parse_known_args(list(argv))
    log = JsonLog()
    telemetry = _set_up(root, args, log)
    if telemetry is None:
        return 2
    spool, senders = telemetry
    if senders and spool is None:
        log.error("an uplink needs a spool: give --spool DIR or set EDGEPACK_SPOOL")
        return 2
    if spool is None:
        log.warning("no --spool: telemetry events are not kept")
        return server_main([str(root), *rest])
    stop = threading.Event()
    drainer: threading.Thread | None = None
    if senders:

        def failed(error: BaseException) -> None:
            log.warning("telemetry uplink failed; retrying", error=str(error), pending=spool.pending())

        def reconnect() -> None:
            _close_all(senders)

        drainer = threading.Thread(
            target=pump,
            args=(spool, _fan_out([s for s, _ in senders]), stop),
            kwargs={"backoff": Backoff(initial=0.5, cap=60.0), "on_error": failed, "reconnect": reconnect},
            name="telemetry-drain",
            daemon=True,
        )
        drainer.start()
    sink = spool_sink(spool, artifact_digest=spool.labels["artifact_digest"], version=spool.labels["version"])
    try:
        return server_main([str(root), *rest], extra_sinks=[sink])
    finally:
        stop.set()
        if drainer is not None:
            drainer.join(10)
        _close_all(senders)
        spool.close()


def drain_main(root: Path, argv: Sequence[str]) -> int:
    """``predict.py telemetry-drain``: deliver what the spool holds, once."""
    args = _parser("predict.py telemetry-drain").parse_args(list(argv))
    log = JsonLog()
    telemetry = _set_up(root, args, log)
    if telemetry is None:
        return 2
    spool, senders = telemetry
    if spool is None or not senders:
        log.error("telemetry-drain needs --spool DIR and --mqtt or --http-url")
        return 2
    try:
        sent = spool.drain(_fan_out([s for s, _ in senders]))
    except Exception as e:  # reported; the events stay in the spool
        log.error("telemetry uplink failed", error=str(e), pending=spool.pending())
        return 1
    finally:
        _close_all(senders)
        spool.close()
    log.info("telemetry drained", events=sent)
    return 0


if __name__ == "__main__":  # pragma: no cover - predict.py is the entry point
    sys.exit(2)
