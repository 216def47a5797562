"""Verify a container target's outputs: the signed image statement, every blob of the OCI
layout it names, and the signed bundles the image was made from.

The statement (``image.dsse.json``) names the image manifest by digest; the manifest names
the config and layers by digest, so checking every blob against its digest from the
manifest down ties each byte of the image to the signature. Each bundle beside the image
is verified as the artifact it is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DigestMismatchError, MalformedAttestationError, MissingFileError, VerificationError
from ..runtime.hashing import sha256_file
from .dsse import open_envelope
from .keys import PublicKey
from .verify import Expectation, VerifiedArtifact, verify_artifact

IMAGE_ATTESTATION = "image.dsse.json"
_IMAGE_SUBJECT = "oci-image:"
_MAX_STATEMENT_BYTES = 1 << 20


@dataclass(frozen=True)
class VerifiedImage:
    manifest_digest: str | None  # None: a build context without an image
    tag: str | None
    bundles: dict[str, VerifiedArtifact]
    keyid: str | None


def is_container_outputs(path: Path) -> bool:
    return path.is_dir() and ((path / IMAGE_ATTESTATION).is_file() or (path / "Dockerfile").is_file())


def _check_blob(layout: Path, descriptor: dict[str, Any]) -> bytes | None:
    from ..packaging.oci import blob_path

    digest = str(descriptor.get("digest"))
    try:
        path = blob_path(layout, digest)
    except Exception as e:
        raise MalformedAttestationError(f"malformed digest {digest!r}") from e
    if not path.is_file():
        raise MissingFileError(f"blob {digest} is missing", where=str(layout))
    if f"sha256:{sha256_file(path)}" != digest or path.stat().st_size != descriptor.get("size"):
        raise DigestMismatchError(f"blob {digest} does not match its digest or size", where=str(layout))
    return path.read_bytes() if path.stat().st_size <= _MAX_STATEMENT_BYTES else None


def verify_container_outputs(
    directory: Path, keys: Sequence[PublicKey], *, expect: Expectation | None = None
) -> VerifiedImage:
    """Verify the image statement, every blob it reaches, and every bundle (each as ``expect``
    asks); raise on the first refusal."""
    from ..packaging.oci import manifest_descriptor

    directory = Path(directory)
    bundles = {p.name: verify_artifact(p, keys, expect=expect) for p in sorted(directory.glob("*.tar.gz"))}
    if not bundles:
        raise MissingFileError("no signed bundle in the container outputs", where=str(directory))
    statement_path = directory / IMAGE_ATTESTATION
    layout = directory / "oci"
    if not statement_path.is_file():
        if layout.exists():
            raise MissingFileError(
                f"{IMAGE_ATTESTATION}: the image has no signed statement", where=str(directory)
            )
        return VerifiedImage(None, None, bundles, None)
    try:
        envelope = json.loads(statement_path.read_bytes()[:_MAX_STATEMENT_BYTES])
    except ValueError as e:
        raise MalformedAttestationError(f"{IMAGE_ATTESTATION}: not JSON ({e})", where=str(directory)) from e
    opened = open_envelope(envelope, keys)
    statement = json.loads(opened.payload)
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement.get("subject", [])}
    images = [name for name in subjects if name.startswith(_IMAGE_SUBJECT)]
    if len(images) != 1:
        raise MalformedAttestationError(f"{IMAGE_ATTESTATION}: names {len(images)} images, expected one")
    tag = images[0].removeprefix(_IMAGE_SUBJECT)
    try:
        descriptor = manifest_descriptor(layout, tag)
    except Exception as e:
        raise MissingFileError(f"no image tagged {tag!r} in {layout}: {e}", where=str(directory)) from e
    if descriptor["digest"] != f"sha256:{subjects[images[0]]}":
        raise DigestMismatchError(
            f"image {tag}: manifest {descriptor['digest']} is not the signed sha256:{subjects[images[0]]}",
            where=str(directory),
        )
    manifest_bytes = _check_blob(layout, descriptor)
    assert manifest_bytes is not None  # manifests are small
    manifest = json.loads(manifest_bytes)
    for blob in [manifest["config"], *manifest["layers"]]:
        _check_blob(layout, blob)
    for name, digest in subjects.items():
        if name in images:
            continue
        if name not in bundles:
            raise MissingFileError(
                f"{name}: bundle named by the image statement is missing", where=str(directory)
            )
        if sha256_file(directory / name) != digest:
            raise DigestMismatchError(f"{name}: not the bundle the image was made from", where=str(directory))
    keyid = str(envelope["signatures"][0].get("keyid")) if envelope.get("signatures") else None
    return VerifiedImage(descriptor["digest"], tag, bundles, keyid)


__all__ = [
    "IMAGE_ATTESTATION",
    "VerificationError",
    "VerifiedImage",
    "is_container_outputs",
    "verify_container_outputs",
]
