"""The device agent: poll a channel, take the newest release meant for this device, install it.

One poll:

1. fetch the channel index and verify it with the trusted keys; refuse an index whose
   sequence is lower than one already seen (``ROOT/channel-state.json``);
2. among the entries for the installed project and target (or ``--name``/``--target`` on a
   device with nothing installed), take the highest version above the installed one whose
   staged rollout includes this device (``rollout.eligible``) and that did not fail here before;
3. work out which files the device lacks: every digest of the release not already held by
   the active or previous slot (``installer.present_blobs``) or the blob cache
   (``ROOT/blobs/sha256/``), and download only those, resumably, each verified before use;
4. hand the attestation and the blobs to ``installer.install_files``, which verifies the
   signature, assembles a fresh slot, health-checks it and switches atomically;
5. report the outcome as one JSON line. A release whose install failed is remembered in
   ``ROOT/agent-state.json`` and not retried until a newer one appears.
"""

from __future__ import annotations

import argparse
import json
import shlex
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..failures import EXIT_BAD_INPUT, EdgepackError
from ..trust.errors import VerificationError
from ..trust.statement import version_key
from . import installer, rollout
from .channel import Channel, Entry, Index, fetch_index
from .download import DownloadStats, download_blob
from .fsutil import atomic_write

CACHE_DIR = "blobs/sha256"
CHANNEL_STATE = "channel-state.json"
AGENT_STATE = "agent-state.json"
DEVICE_ID = "device-id"


class AgentConfigError(EdgepackError):
    exit_code = EXIT_BAD_INPUT
    http_status = 400


@dataclass
class PollReport:
    """What one poll did, printed as a JSON line."""

    # installed | up-to-date | not-eligible | refused (verification) | failed (install, health) | error
    outcome: str
    device_id: str
    sequence: int | None = None
    version: str | None = None
    installed: str | None = None
    downloaded_bytes: int = 0
    downloaded: list[str] = field(default_factory=list)
    reused: int = 0
    resumed: int = 0
    via: str = "files"  # or "bundle": the whole compressed bundle, when that is fewer bytes
    reason: str = ""
    exit_code: int = 0

    def to_json(self) -> str:
        """One line; the downloaded digests are counted, not listed (a first install has hundreds)."""
        fields = asdict(self)
        fields["downloaded"] = len(self.downloaded)
        return json.dumps(fields, sort_keys=True)


@dataclass(frozen=True)
class AgentConfig:
    channel: str
    root: Path
    keys: Sequence[Any]
    device_id: str
    options: installer.InstallOptions = field(default_factory=installer.InstallOptions)
    name: str | None = None
    target: str | None = None
    # Each poll's report also goes here as an ``ota`` event (a spool of the agent's own, drained
    # like the server's with ``predict.py telemetry-drain``), so the fleet sees every outcome.
    spool: Path | None = None


def device_id_for(root: Path, given: str | None) -> str:
    """``given``, else the id stored in ``ROOT/device-id``, else the host name (then stored)."""
    if given:
        return given
    path = Path(root) / DEVICE_ID
    try:
        stored = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        stored = ""
    if stored:
        return stored
    Path(root).mkdir(parents=True, exist_ok=True)
    chosen = socket.gethostname() or "device"
    atomic_write(path, chosen.encode() + b"\n")
    return chosen


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _failed_before(root: Path) -> set[str]:
    failed = _read_json(root / AGENT_STATE).get("failed", [])
    return {str(x) for x in failed} if isinstance(failed, list) else set()


def _remember_failure(root: Path, entry: Entry) -> None:
    state = _read_json(root / AGENT_STATE)
    failed = sorted(_failed_before(root) | {entry.attestation.sha256})
    atomic_write(root / AGENT_STATE, json.dumps({**state, "failed": failed}, sort_keys=True).encode())


def choose(
    index: Index, *, name: str, target: str, installed: str | None, device_id: str, skip: set[str]
) -> tuple[Entry | None, str]:
    """The release this device should take, or ``None`` and why not."""
    mine = [e for e in index.entries if e.name == name and e.target == target]
    newer = [e for e in mine if installed is None or version_key(e.version) > version_key(installed)]
    if not newer:
        return None, "up-to-date"
    eligible = [e for e in newer if rollout.eligible(device_id, e.name, e.version, e.rollout_percent)]
    eligible = [e for e in eligible if e.attestation.sha256 not in skip]
    if not eligible:
        return None, "not-eligible"
    return max(eligible, key=lambda e: version_key(e.version)), ""


def missing_blobs(entry: Entry, have: set[str]) -> list[Any]:
    """The release's blobs (attestation first) whose digest the device does not hold, each once."""
    wanted = []
    seen = set(have)
    for blob in (entry.attestation, *entry.files):
        if blob.sha256 not in seen:
            seen.add(blob.sha256)
            wanted.append(blob)
    return wanted


def _cached(cache: Path) -> dict[str, Path]:
    if not cache.is_dir():
        return {}
    return {p.name: p for p in cache.iterdir() if len(p.name) == 64 and p.is_file()}


def poll_once(config: AgentConfig, *, stats: DownloadStats | None = None) -> PollReport:
    """One poll of the channel (see the module docstring); never raises an ``EdgepackError``:
    refusals and failures come back in the report with their exit code."""
    root = Path(config.root)
    root.mkdir(parents=True, exist_ok=True)
    stats = stats if stats is not None else DownloadStats()
    report = PollReport(outcome="error", device_id=config.device_id)
    try:
        channel = Channel.parse(config.channel)
        index = fetch_index(channel, config.keys, root / CHANNEL_STATE)
        report.sequence = index.sequence
        active = installer.status(root).get("active") or {}
        name = config.name or active.get("name")
        target = config.target or active.get("target")
        report.installed = active.get("version")
        if not name or not target:
            names = sorted({(e.name, e.target) for e in index.entries})
            if len(names) != 1:
                raise AgentConfigError(
                    "nothing is installed and the channel offers "
                    f"{len(names)} project/target pairs: give --name and --target"
                )
            name, target = names[0]
        entry, why = choose(
            index,
            name=str(name),
            target=str(target),
            installed=report.installed,
            device_id=config.device_id,
            skip=_failed_before(root),
        )
        if entry is None:
            report.outcome = why
            return report
        report.version = entry.version
        _fetch_and_install(config, root, channel, entry, stats, report)
    except EdgepackError as e:
        report.outcome = (
            "refused" if isinstance(e, VerificationError) else "failed" if e.exit_code == 4 else "error"
        )
        report.reason = e.hint()
        report.exit_code = e.exit_code
    finally:
        report.downloaded_bytes = stats.bytes
        report.downloaded = list(stats.blobs)
        report.resumed = stats.resumed
    return report


def _fetch_and_install(
    config: AgentConfig, root: Path, channel: Channel, entry: Entry, stats: DownloadStats, report: PollReport
) -> None:
    cache = root / CACHE_DIR
    present = installer.present_blobs(root)
    cached = _cached(cache)
    wanted = missing_blobs(entry, set(present) | set(cached))
    report.reused = len({entry.attestation.sha256, *(f.sha256 for f in entry.files)}) - len(wanted)
    if sum(blob.size for blob in wanted) > entry.bundle.size:
        # Most of the release is new (a first install): the compressed bundle is fewer bytes.
        report.via = "bundle"
        _fetch_and_install_bundle(config, root, channel, entry, stats, report)
        return
    for blob in wanted:
        cached[blob.sha256] = download_blob(
            channel.blob_location(blob), cache, blob.sha256, blob.size, stats=stats
        )
    envelope = cached.get(entry.attestation.sha256) or present.get(entry.attestation.sha256)
    assert envelope is not None

    def blob_for(sha256: str) -> Path | None:
        return cached.get(sha256) or present.get(sha256)

    try:
        result = installer.install_files(root, envelope.read_bytes(), blob_for, config.keys, config.options)
    except EdgepackError as e:
        if e.exit_code == 4:  # refused or failed its health check: not retried, its blobs not kept
            _remember_failure(root, entry)
            _clear(cached)
        raise
    report.outcome = result.outcome
    report.reason = result.reason
    # The new slot holds every file now; the cache only mattered until the switch.
    _clear(cached)


def _fetch_and_install_bundle(
    config: AgentConfig, root: Path, channel: Channel, entry: Entry, stats: DownloadStats, report: PollReport
) -> None:
    cache = root / CACHE_DIR
    bundle = download_blob(
        channel.bundle_location(entry), cache, entry.bundle.sha256, entry.bundle.size, stats=stats
    )
    try:
        result = installer.install_bundle(root, bundle, config.keys, config.options)
    except EdgepackError as e:
        if e.exit_code == 4:
            _remember_failure(root, entry)
        raise
    finally:
        bundle.unlink(missing_ok=True)
    report.outcome = result.outcome
    report.reason = result.reason


def _clear(cached: dict[str, Path]) -> None:
    for path in cached.values():
        path.unlink(missing_ok=True)


def run(config: AgentConfig, *, once: bool, interval_s: float, out: Callable[[str], None] = print) -> int:
    """Poll once, or forever every ``interval_s``; the exit code of the last poll."""
    while True:
        report = poll_once(config)
        out(report.to_json())
        if config.spool is not None:
            _report_to_spool(config.spool, report)
        if once:
            return report.exit_code
        time.sleep(interval_s)


def _report_to_spool(directory: Path, report: PollReport) -> None:
    from .spool import Spool

    fields = {key: value for key, value in asdict(report).items() if key != "downloaded"}
    with Spool(directory) as spool:
        spool.append({"event": "ota", "timestamp": time.time(), **fields})


# -- the runtime's argparse CLI ---------------------------------------------------------


def add_agent_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``agent`` for ``python -m edgepack_runtime.device``."""
    agent = subparsers.add_parser("agent", help="poll a channel and install what it offers this device")
    agent.add_argument("--channel", required=True, help="channel directory, file://, http(s):// or s3:// URL")
    agent.add_argument("--root", type=Path, required=True)
    agent.add_argument("--trust", type=Path, action="append", required=True, help="trusted public key (PEM)")
    agent.add_argument("--device-id", default=None)
    agent.add_argument("--name", default=None, help="project to follow when nothing is installed yet")
    agent.add_argument("--target", default=None, help="target to follow when nothing is installed yet")
    agent.add_argument("--once", action="store_true", help="poll once and exit with its outcome")
    agent.add_argument("--interval", type=float, default=300.0, help="seconds between polls")
    agent.add_argument("--python", default=None, help="interpreter command for the health check")
    agent.add_argument("--health-timeout", type=float, default=120.0)
    agent.add_argument("--spool", type=Path, default=None, help="append each poll's report to this spool")
    agent.set_defaults(handler=run_from_args)
    return agent


def config_from(
    *,
    channel: str,
    root: Path,
    trust: Sequence[Path],
    device_id: str | None,
    name: str | None,
    target: str | None,
    python: str | None,
    health_timeout_s: float,
    spool: Path | None = None,
) -> AgentConfig:
    from ..trust.public_keys import load_public_keys

    keys = load_public_keys(list(trust))
    Channel.parse(channel)  # a bad location is bad input, before any poll
    options = installer.InstallOptions(
        python=tuple(shlex.split(python)) if python else (sys.executable,), health_timeout_s=health_timeout_s
    )
    return AgentConfig(
        channel=channel,
        root=Path(root),
        keys=keys,
        device_id=device_id_for(Path(root), device_id),
        options=options,
        name=name,
        target=target,
        spool=spool,
    )


def run_from_args(args: argparse.Namespace) -> int:
    config = config_from(
        channel=args.channel,
        root=args.root,
        trust=args.trust,
        device_id=args.device_id,
        name=args.name,
        target=args.target,
        python=args.python,
        health_timeout_s=args.health_timeout,
        spool=args.spool,
    )
    if args.interval <= 0:
        raise AgentConfigError(f"--interval {args.interval}: must be above 0")
    return run(config, once=args.once, interval_s=args.interval, out=lambda line: print(line, flush=True))
