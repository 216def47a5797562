"""``edgepack verify``: check an artifact's signature and every file's digest."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("artifact", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--key",
    "keys",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trusted public key (PEM); repeat for several.",
)
def verify(artifact: Path, keys: tuple[Path, ...]) -> None:
    """Verify ARTIFACT (zip, bundle, directory, or a container target's output directory with its
    OCI image) offline against trusted public KEYs.

    Exits 4 naming the failed check: bad signature, digest mismatch, unlisted or
    missing file, unsafe path.
    """
    from ..signing.keys import load_public_keys
    from ..signing.verify import verify_artifact
    from ..signing.verify_image import is_container_outputs, verify_container_outputs

    trusted = load_public_keys(list(keys))
    if is_container_outputs(artifact):
        image = verify_container_outputs(artifact, trusted)
        what = (
            f"image {image.tag} {image.manifest_digest}"
            if image.manifest_digest
            else "build context (no image)"
        )
        click.echo(f"verified {artifact}: {what}, bundles {', '.join(image.bundles)}")
        return
    verified = verify_artifact(artifact, trusted)
    m = verified.manifest
    click.echo(
        f"verified {artifact}: {m['name']} {m['version']} for {m['target']['name']}, "
        f"{len(verified.subjects)} files, signed by {verified.keyid[:16]}"
    )
