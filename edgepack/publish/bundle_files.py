"""A bundle about to be published: verified and unpacked, so each of its files can become a blob."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInputError
from ..runtime.device.channel import Blob
from ..runtime.hashing import sha256_file
from ..runtime.manifest import ATTESTATION_FILE
from ..runtime.trust.public_keys import PublicKey


class BundleInputError(BadInputError):
    """A bundle given to publish is missing or is not a bundle (exit 2)."""


@dataclass(frozen=True)
class PublishedBundle:
    """A verified bundle: its manifest, the bundle file, its attestation and every file by digest."""

    source: Path
    manifest: dict[str, Any]
    bundle: Blob
    attestation: Blob
    files: tuple[Blob, ...]
    tree: Path  # where it was unpacked: blob i is tree / files[i].path

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def target(self) -> str:
        return str(self.manifest["target"]["name"])


def unpack_verified(bundle: Path, keys: Sequence[PublicKey], dest: Path) -> PublishedBundle:
    """Verify ``bundle`` against ``keys`` and unpack it into the fresh directory ``dest``.

    Raises ``BundleInputError`` (exit 2) for a missing or non-bundle path and the
    ``VerificationError`` of the failed check (exit 4) for a refused one.
    """
    from ..runtime.trust.reader import Expectation, verify_and_extract

    if not bundle.is_file():
        raise BundleInputError("no such bundle file", where=str(bundle))
    if not bundle.name.endswith(".tar.gz"):
        raise BundleInputError("not a device bundle (*.tar.gz)", where=str(bundle))
    verified = verify_and_extract(bundle, dest, keys, kind="tar.gz", expect=Expectation())
    target = verified.manifest.get("target")
    if not isinstance(target, dict) or not isinstance(target.get("name"), str):
        raise BundleInputError("the manifest names no target", where=str(bundle))
    files = tuple(
        Blob(
            sha256=sha,
            size=(dest / name).stat().st_size,
            path=name,
            mode=verified.modes.get(name, 0o644),
        )
        for name, sha in sorted(verified.subjects.items())
    )
    attestation = dest / ATTESTATION_FILE
    if not attestation.is_file():
        raise BundleInputError(f"{ATTESTATION_FILE} was not unpacked", where=str(bundle))
    return PublishedBundle(
        source=bundle,
        manifest=dict(verified.manifest),
        bundle=Blob(sha256=sha256_file(bundle), size=bundle.stat().st_size, path=f"bundles/{bundle.name}"),
        attestation=Blob(sha256=sha256_file(attestation), size=attestation.stat().st_size),
        files=files,
        tree=dest,
    )
