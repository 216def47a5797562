"""``edgepack image``: one OCI image serving several signed container bundles."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument(
    "bundles", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option(
    "--base-image",
    type=click.Path(exists=True, path_type=Path),
    help="OCI layout or archive to build on (without one: only the Dockerfile and build context).",
)
@click.option(
    "--signing-key",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ed25519 private key that signs the image statement; its public key must verify the bundles.",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Further trusted public keys for the bundles (repeatable).",
)
@click.option("--tag", default=None, help="Image tag (default: the first bundle's version).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--user", default="10001:10001", show_default=True)
def image(
    bundles: tuple[Path, ...],
    out: Path,
    base_image: Path | None,
    signing_key: Path,
    keys: tuple[Path, ...],
    tag: str | None,
    port: int,
    user: str,
) -> None:
    """Write an image serving every BUNDLE (container-cpu builds), each at /v2/models/<name>.

    The bundles are verified and unpacked first; the image is made of what was verified.
    """
    from ..cache import BuildCache
    from ..container_base import load_base_image
    from ..container_image import write_container_outputs
    from ..packaging.archive import source_date_epoch
    from ..signing.keys import Ed25519FileSigner, load_public_key_pem, load_public_keys
    from ..targets import ResourceSpec

    signer = Ed25519FileSigner.from_file(signing_key, where="--signing-key")
    trusted = [load_public_key_pem(signer.public_key_pem()), *load_public_keys(keys)]
    base = load_base_image(base_image, cache=BuildCache.default()) if base_image else None
    outputs = write_container_outputs(
        list(bundles),
        out,
        keys=trusted,
        signer=signer,
        base=base,
        port=port,
        user=user,
        resources=ResourceSpec().model_dump(),
        tag=tag,
        epoch=source_date_epoch(),
        say=lambda m: click.echo(m, err=True),
    )
    click.echo(outputs.note)
