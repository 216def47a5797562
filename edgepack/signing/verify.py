"""Verify an artifact offline: the build side's names for the runtime's one trust path.

The checks live in ``edgepack/runtime/trust`` (they ship on devices, so a device and
``edgepack verify`` run the same code): ``statement`` is the pure core, ``reader`` reads
a zip, a tar.gz bundle or a directory from one open file handle, signature first. Each
check has its own exception and nothing returns False.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import MissingFileError
from ..runtime.manifest import MANIFEST_FILE
from ..runtime.trust.public_keys import PublicKey
from ..runtime.trust.reader import (
    MAX_ATTESTATION_BYTES,
    MAX_MANIFEST_BYTES,
    ArtifactKind,
    Expectation,
    Limits,
    kind_of,
    verify_and_assemble,
    verify_and_extract,
    verify_tree,
)
from ..runtime.trust.statement import (
    VerifiedArtifact,
    VerifiedStatement,
    check_digests,
    check_manifest,
    check_names,
    strict_json,
    verify_statement,
)


def verify_statement_bytes(
    envelope_bytes: bytes,
    files: Mapping[str, bytes | str],
    keys: Sequence[PublicKey],
    expect: Expectation | None = None,
) -> VerifiedArtifact:
    """Verify an artifact held in memory (names and digests; modes are the reader's job).

    ``files`` maps every file (relative POSIX path; the attestation may be left out) to its
    content bytes or its sha256 hex digest; the manifest must be given as bytes.
    """
    verified = verify_statement(envelope_bytes, keys)
    check_names(verified, files)
    check_digests(verified, files)
    manifest_bytes = files[MANIFEST_FILE]
    if not isinstance(manifest_bytes, bytes):
        raise TypeError(f"{MANIFEST_FILE} must be given as bytes, not as a digest")
    manifest = check_manifest(manifest_bytes, expect)
    return VerifiedArtifact(
        manifest=manifest, subjects=dict(verified.subjects), modes=dict(verified.modes), keyid=verified.keyid
    )


def verify_artifact(
    path: Path,
    keys: Sequence[PublicKey],
    *,
    kind: ArtifactKind | None = None,
    expect: Expectation | None = None,
) -> VerifiedArtifact:
    """Verify a directory (in place) or a zip / tar.gz artifact (its kind from its name, or
    ``kind``) without writing anything. Raises the ``VerificationError`` of the check that refused."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        return verify_tree(path, keys, expect=expect)
    if not path.exists():
        raise MissingFileError("no such artifact", where=str(path))
    return verify_and_extract(path, None, keys, kind=kind, expect=expect)


__all__ = [
    "MAX_ATTESTATION_BYTES",
    "MAX_MANIFEST_BYTES",
    "ArtifactKind",
    "Expectation",
    "Limits",
    "VerifiedArtifact",
    "VerifiedStatement",
    "check_digests",
    "check_manifest",
    "check_names",
    "kind_of",
    "strict_json",
    "verify_and_assemble",
    "verify_and_extract",
    "verify_artifact",
    "verify_statement",
    "verify_statement_bytes",
    "verify_tree",
]
