"""``edgepack base-image``: a Debian base image for container targets, as an OCI layout."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("base-image")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory to write the OCI image layout to (replaced if it exists).",
)
@click.option("--suite", default=None, help="Debian release: bookworm (Python 3.11) or trixie (3.13).")
@click.option("--python", "python", default=None, help="CPython version, e.g. 3.11 (picks the suite).")
@click.option("--arch", default=None, help="x86_64 or aarch64 (default: this machine's).")
@click.option(
    "--include", "include", multiple=True, metavar="PKG", help="Another Debian package (repeatable)."
)
@click.option("--tag", default="base", show_default=True, help="Tag (ref.name) of the image in the layout.")
def base_image(
    out: Path, suite: str | None, python: str | None, arch: str | None, include: tuple[str, ...], tag: str
) -> None:
    """Build a base image from Debian packages with mmdebstrap (cached; no daemon, no registry).

    It holds CPython, libstdc++, CA certificates, time zones and an unprivileged user
    `app` (uid 10001). Use it with `skopeo copy oci:OUT:TAG ...` or `podman run oci:OUT:TAG`.
    """
    from ..container_base import build_base_image

    base = build_base_image(out, suite=suite, python=python, arch=arch, include=include, tag=tag)
    click.echo(f"wrote {out} (tag {base.tag})")
    click.echo(f"  python   {base.python} ({base.abi_tag}, {base.python_executable})")
    click.echo(f"  glibc    {base.glibc or 'unknown'}")
    click.echo(f"  arch     {base.arch}")
    click.echo(f"  size     {base.size / 1e6:.1f} MB compressed, {len(base.layers)} layer(s)")
    click.echo(f"  digest   {base.manifest_digest}")
