"""``edgepack keys``: signing keys."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def keys() -> None:
    """Manage signing keys."""


@keys.command()
@click.option(
    "--out",
    "prefix",
    required=True,
    type=click.Path(path_type=Path),
    help="Path prefix: writes PREFIX.key (private, mode 0600, never commit it) and PREFIX.pub.",
)
def generate(prefix: Path) -> None:
    """Generate an Ed25519 key pair for signing artifacts."""
    from ..signing.keys import generate_keypair

    private, public = generate_keypair(prefix)
    click.echo(f"wrote {private} (private, keep it secret) and {public} (public, give it to verifiers)")
