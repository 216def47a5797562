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
@click.option("--min-version", help="Refuse an artifact older than this version (e.g. 1.2.0).")
@click.option("--name", "project", help="Refuse an artifact of another project.")
@click.option("--target", help="Refuse an artifact for another target (e.g. rpi-tflite).")
def verify(
    artifact: Path,
    keys: tuple[Path, ...],
    min_version: str | None,
    project: str | None,
    target: str | None,
) -> None:
    """Verify ARTIFACT (a .zip, a .tar.gz bundle, a directory, or a container target's output
    directory with its OCI image) offline against trusted public KEYs.

    Exits 4 naming the failed check: bad signature, digest or mode mismatch, unlisted or
    missing file, unsafe or non-canonical name, malformed archive, or not the project,
    target or minimum version asked for.
    """
    from ..runtime.trust.reader import Expectation
    from ..signing.keys import load_public_keys
    from ..signing.verify import verify_artifact
    from ..signing.verify_image import is_container_outputs, verify_container_outputs

    trusted = load_public_keys(list(keys))
    expect = Expectation(name=project, target=target, min_version=min_version)
    if is_container_outputs(artifact):
        image = verify_container_outputs(artifact, trusted, expect=expect)
        what = (
            f"image {image.tag} {image.manifest_digest}"
            if image.manifest_digest
            else "build context (no image)"
        )
        click.echo(f"verified {artifact}: {what}, bundles {', '.join(image.bundles)}")
        return
    verified = verify_artifact(artifact, trusted, expect=expect)
    m = verified.manifest
    click.echo(
        f"verified {artifact}: {m['name']} {m['version']} for {m['target']['name']}, "
        f"{len(verified.subjects)} files, signed by {verified.keyid[:16]}"
    )
