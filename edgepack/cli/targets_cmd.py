"""``edgepack targets``: the shipped target profiles."""

from __future__ import annotations

import click


@click.command()
def targets() -> None:
    """List the target profiles edgepack ships."""
    from ..targets import available_targets, load_target

    for name in available_targets():
        profile = load_target(name)
        click.echo(f"{name:18} {profile.kind:9} {profile.arch:8} {profile.backend:12} {profile.description}")
