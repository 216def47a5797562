"""``edgepack device install|status|rollback``: the device installer, run from a workstation.

The same functions as ``python -m edgepack_runtime.device`` on a device (``runtime/device``).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import click

from .device_agent_cmd import agent

_ROOT = click.option(
    "--root",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The device's install root (slots, active link, journal, version floor).",
)


@click.group()
def device() -> None:
    """Install signed bundles on a device: verified, health-checked, switched atomically."""


@device.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_ROOT
@click.option(
    "--trust",
    "trust",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trusted public key (PEM); repeat for several.",
)
@click.option("--allow-downgrade", is_flag=True, help="Install even at or below the version floor.")
@click.option(
    "--python",
    "python",
    default=None,
    help="Interpreter command for the health check, e.g. 'qemu-aarch64 -L ROOT ROOT/usr/bin/python3.11' "
    "(default: this Python).",
)
@click.option("--health-timeout", type=float, default=120.0, show_default=True, help="Seconds.")
def install(
    bundle: Path,
    root: Path,
    trust: tuple[Path, ...],
    allow_downgrade: bool,
    python: str | None,
    health_timeout: float,
) -> None:
    """Verify BUNDLE, unpack it into a fresh slot, health-check it and make it active.

    Exits 4 with the reason when it is refused or fails its health check; the active
    version is then unchanged.
    """
    from ..runtime.device.installer import InstallOptions, install_bundle
    from ..runtime.trust.public_keys import load_public_keys

    options = InstallOptions(
        python=tuple(shlex.split(python)) if python else (sys.executable,),
        allow_downgrade=allow_downgrade,
        health_timeout_s=health_timeout,
    )
    result = install_bundle(root, bundle, load_public_keys(list(trust)), options)
    click.echo(f"installed {result.version} ({result.digest[:16]}) in {result.slot}")


@device.command()
@_ROOT
def status(root: Path) -> None:
    """Print the active and previous versions, the version floor and the journal's tail (JSON)."""
    from ..runtime.device.installer import status as read_status

    click.echo(json.dumps(read_status(root), indent=2, sort_keys=True))


@device.command()
@_ROOT
@click.option(
    "--trust",
    "trust",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Verify the kept version's signature too (else its digests are checked).",
)
def rollback(root: Path, trust: tuple[Path, ...]) -> None:
    """Make the kept previous version active again (allowed below the version floor)."""
    from ..runtime.device.installer import rollback as roll_back
    from ..runtime.trust.public_keys import load_public_keys

    result = roll_back(root, keys=load_public_keys(list(trust)) if trust else ())
    click.echo(f"rolled back to {result.version} in {result.slot}")


device.add_command(agent)
