"""``edgepack publish``: put signed bundles on a channel (directory or S3) and sign its index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def _signer(key: Path | None, project: Path | None) -> Any:
    from ..errors import BadInputError, ConfigError
    from ..signing.keys import Ed25519FileSigner, load_signer

    if (key is None) == (project is None):
        raise BadInputError("give exactly one of --key SIGNING_KEY or --project DIR (its signing section)")
    if key is not None:
        return Ed25519FileSigner.from_file(key, where="--key")
    assert project is not None
    from ..config import CONFIG_FILE, parse_project_file

    config = project / CONFIG_FILE if project.is_dir() else project
    try:
        text = config.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read {CONFIG_FILE} ({e.strerror or e})", where=str(config)) from e
    spec = parse_project_file(text, str(config)).signing
    if spec is None:
        raise ConfigError("no signing section", where=str(config))
    return load_signer(spec, config.parent)


@click.command()
@click.argument("bundles", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--channel", required=True, help="Channel directory, or s3://bucket/prefix.")
@click.option("--key", type=click.Path(path_type=Path), help="Ed25519 signing key (PEM) for the index.")
@click.option(
    "--project", type=click.Path(path_type=Path), help="Sign with this project's edgepack.yaml signing key."
)
@click.option(
    "--trust",
    "trusted",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Also accept bundles signed by this public key (repeatable); the signer's own always is.",
)
@click.option(
    "--rollout", default="100", show_default=True, help="Percentage of devices to offer it to (0-100)."
)
@click.option(
    "--iot-job", "iot_job", metavar="THING_GROUP", help="Also create an AWS IoT job for this thing group."
)
def publish(
    bundles: tuple[Path, ...],
    channel: str,
    key: Path | None,
    project: Path | None,
    trusted: tuple[Path, ...],
    rollout: str,
    iot_job: str | None,
) -> None:
    """Verify BUNDLES and publish them to a channel devices poll (`edgepack device agent`).

    Each bundle's files go in as content-addressed blobs, so a device downloads only the files
    it lacks; the signed index (sequence-numbered against replay) is written last. Republish a
    version with another --rollout to widen a staged rollout. Exits 2 on bad input, 4 when a
    bundle does not verify; a refusal writes nothing.
    """
    from ..publish import RolloutError
    from ..publish import publish as run_publish
    from ..runtime.trust.public_keys import load_public_keys

    try:
        percent = float(rollout)
    except ValueError:
        raise RolloutError(f"{rollout!r} is not a number", where="--rollout") from None
    signer = _signer(key, project)
    keys = load_public_keys(list(trusted))
    result = run_publish(
        list(bundles), channel, signer, trusted=keys, rollout=percent, iot_thing_group=iot_job
    )
    for entry in result.entries:
        click.echo(
            f"published {entry.name} {entry.version} for {entry.target} at {entry.rollout_percent}% "
            f"({len(entry.files)} files)"
        )
    click.echo(
        f"channel {result.channel}: index sequence {result.sequence}, {result.blobs_written} new blobs, "
        f"{result.bytes_written} bytes written"
    )
    if result.index_url.startswith(("http://", "https://")):
        click.echo(f"index URL for devices without AWS credentials (presigned, 7 days): {result.index_url}")
    for job in result.jobs:
        click.echo(f"IoT job {job}")
