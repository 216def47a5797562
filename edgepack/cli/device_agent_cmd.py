"""``edgepack device agent``: the device agent from a workstation (the same code a device runs)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--channel", required=True, help="Channel directory, file://, http(s):// or s3:// URL.")
@click.option("--root", required=True, type=click.Path(path_type=Path), help="The device's install root.")
@click.option(
    "--trust",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Trusted public key (PEM); repeat for several.",
)
@click.option("--device-id", default=None, help="Device id (default: ROOT/device-id, else the host name).")
@click.option("--name", default=None, help="Project to follow when nothing is installed yet.")
@click.option("--target", default=None, help="Target to follow when nothing is installed yet.")
@click.option("--once", is_flag=True, help="Poll once and exit with its outcome.")
@click.option("--interval", default=300.0, type=click.FloatRange(min=0, min_open=True), show_default=True)
@click.option("--python", default=None, help="Interpreter command for the health check (default: this one).")
@click.option("--health-timeout", default=120.0, type=float, show_default=True)
@click.option(
    "--spool",
    default=None,
    type=click.Path(path_type=Path),
    help="Also append each poll's report to this telemetry spool (drain it with predict.py telemetry-drain).",
)
def agent(
    channel: str,
    root: Path,
    trust: tuple[Path, ...],
    device_id: str | None,
    name: str | None,
    target: str | None,
    once: bool,
    interval: float,
    python: str | None,
    health_timeout: float,
    spool: Path | None,
) -> None:
    """Poll a channel; install the newest release meant for this device, downloading only the
    files it lacks. Prints one JSON line per poll; with --once exits with its outcome
    (0 installed or nothing to do, 4 refused, 1 failed)."""
    from ..runtime.device.agent import config_from, run

    config = config_from(
        channel=channel,
        root=root,
        trust=trust,
        device_id=device_id,
        name=name,
        target=target,
        python=python,
        health_timeout_s=health_timeout,
        spool=spool,
    )
    code = run(config, once=once, interval_s=interval, out=click.echo)
    if code:
        raise SystemExit(code)
