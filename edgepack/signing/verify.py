"""Verify an artifact offline: signature by a trusted key, then every file against the statement.

The core is pure (bytes and keys in, verified manifest out, or an exception); the
wrappers below read a directory, a zip or a tar bundle into it without unpacking
anything to disk. Each check has its own exception and nothing returns False:

1. the envelope is well-formed                        MalformedAttestationError
2. a trusted key signed it                            BadSignatureError
3. it holds an in-toto Statement v1 / SLSA v1         MalformedAttestationError
4. every subject name is a safe relative path         UnsafePathError
5. no subject is listed twice                         DuplicateSubjectError
6. the manifest is among the subjects                 MalformedAttestationError
7. no file exists that the statement does not name    UnlistedFileError
8. every subject exists                               MissingFileError
9. ... with the attested sha256                       DigestMismatchError
10. the manifest is readable (and not older than min) MalformedAttestationError / RollbackError
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import (
    DigestMismatchError,
    DuplicateSubjectError,
    MalformedAttestationError,
    MissingFileError,
    RollbackError,
    UnlistedFileError,
    UnsafePathError,
    VerificationError,
)
from ..packaging.archive import MAX_EXTRACT_BYTES, check_relpath, checked_zip_entries, iter_tree
from ..runtime.manifest import ATTESTATION_FILE, MANIFEST_FILE, MANIFEST_SCHEMA
from .attestation import PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE
from .dsse import open_envelope
from .keys import PublicKey

# Size bounds for what is read whole into memory.
MAX_ATTESTATION_BYTES = 64 << 20
MAX_MANIFEST_BYTES = 64 << 20

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_VERSION_RE = re.compile(r"^\d+(\.\d+)*$")


@dataclass(frozen=True)
class VerifiedStatement:
    """A statement whose signature verified and whose subjects are well-formed."""

    statement: dict[str, Any]
    subjects: dict[str, str]  # path -> sha256 hex
    keyid: str


@dataclass(frozen=True)
class VerifiedArtifact:
    """What verification vouches for: the manifest, every file's digest, and who signed."""

    manifest: dict[str, Any]
    subjects: dict[str, str]
    keyid: str


# -- pure core ---------------------------------------------------------------------------


def _relabel(e: VerificationError, prefix: str) -> VerificationError:
    return type(e)(f"{prefix}: {e.message}")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers that keep different copies of a repeated key would see different
    # statements under one signature; refuse the ambiguity instead.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _strict_json(data: bytes) -> Any:
    """RFC 8259 JSON with no repeated keys and no NaN/Infinity."""
    return json.loads(data, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)


def verify_statement(envelope_bytes: bytes, keys: Sequence[PublicKey]) -> VerifiedStatement:
    """Checks 1-6: envelope, signature, statement type, subject names, duplicates, manifest."""
    try:
        envelope = _strict_json(envelope_bytes)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise MalformedAttestationError(f"{ATTESTATION_FILE}: not JSON ({e})") from e
    try:
        opened = open_envelope(envelope, keys)
    except VerificationError as e:
        raise _relabel(e, ATTESTATION_FILE) from e
    if opened.payload_type != PAYLOAD_TYPE:
        raise MalformedAttestationError(
            f"{ATTESTATION_FILE}: payload type {opened.payload_type!r} is not {PAYLOAD_TYPE}"
        )
    try:
        statement = _strict_json(opened.payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise MalformedAttestationError(f"{ATTESTATION_FILE}: statement is not JSON ({e})") from e
    if not isinstance(statement, dict):
        raise MalformedAttestationError(f"{ATTESTATION_FILE}: statement is not a JSON object")
    if statement.get("_type") != STATEMENT_TYPE:
        raise MalformedAttestationError(
            f"{ATTESTATION_FILE}: statement type {statement.get('_type')!r} is not {STATEMENT_TYPE}"
        )
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise MalformedAttestationError(
            f"{ATTESTATION_FILE}: predicate type {statement.get('predicateType')!r} is not {PREDICATE_TYPE}"
        )
    raw_subjects = statement.get("subject")
    if not isinstance(raw_subjects, list) or not raw_subjects:
        raise MalformedAttestationError(f"{ATTESTATION_FILE}: statement has no subject list")

    subjects: dict[str, str] = {}
    for i, subject in enumerate(raw_subjects):
        if not isinstance(subject, dict) or not isinstance(subject.get("name"), str):
            raise MalformedAttestationError(f"{ATTESTATION_FILE}: subject {i} has no name")
        name = subject["name"]
        check_relpath(name)
        digest = subject.get("digest")
        sha = digest.get("sha256") if isinstance(digest, dict) else None
        if not isinstance(sha, str) or not _SHA256_RE.match(sha):
            raise MalformedAttestationError(f"{name}: subject has no lowercase hex sha256 digest")
        if name in subjects:
            raise DuplicateSubjectError(f"{name}: subject listed twice in the statement")
        if name == ATTESTATION_FILE:
            raise MalformedAttestationError(f"{name}: the attestation cannot attest itself")
        subjects[name] = sha
    if MANIFEST_FILE not in subjects:
        raise MalformedAttestationError(f"{MANIFEST_FILE}: the statement does not cover the manifest")
    return VerifiedStatement(statement=statement, subjects=subjects, keyid=opened.keyid)


def check_names(verified: VerifiedStatement, names: Iterable[str]) -> None:
    """Checks 7-8: the artifact's files (besides the attestation) are exactly the subjects."""
    present = set()
    for name in names:
        check_relpath(name)
        if name != ATTESTATION_FILE:
            present.add(name)
    unlisted = sorted(present - verified.subjects.keys())
    if unlisted:
        more = f" (and {len(unlisted) - 1} more)" if len(unlisted) > 1 else ""
        raise UnlistedFileError(f"{unlisted[0]}: file is not listed in the statement{more}")
    missing = sorted(verified.subjects.keys() - present)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise MissingFileError(f"{missing[0]}: attested file is missing{more}")


def check_digests(verified: VerifiedStatement, files: Mapping[str, bytes | str]) -> None:
    """Check 9: each file's sha256 (given as content bytes or a hex digest) is the attested one."""
    for name in sorted(verified.subjects):
        value = files[name]
        actual = hashlib.sha256(value).hexdigest() if isinstance(value, bytes) else value
        expected = verified.subjects[name]
        if actual != expected:
            raise DigestMismatchError(f"{name}: sha256 {actual} does not match the attested {expected}")


def _version_key(version: str) -> tuple[int, ...]:
    parts = [int(p) for p in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def check_manifest(manifest_bytes: bytes, min_version: str | None = None) -> dict[str, Any]:
    """Check 10: the (already digest-checked) manifest parses, and is not older than ``min_version``."""
    try:
        manifest = _strict_json(manifest_bytes)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise MalformedAttestationError(f"{MANIFEST_FILE}: not JSON ({e})") from e
    if not isinstance(manifest, dict):
        raise MalformedAttestationError(f"{MANIFEST_FILE}: not a JSON object")
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise MalformedAttestationError(
            f"{MANIFEST_FILE}: schema {manifest.get('schema')!r} is not {MANIFEST_SCHEMA}"
        )
    version = manifest.get("version")
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise MalformedAttestationError(f"{MANIFEST_FILE}: version {version!r} is not a numeric version")
    if min_version is not None:
        if not _VERSION_RE.match(min_version):
            raise ValueError(f"min_version {min_version!r} is not a numeric version")
        if _version_key(version) < _version_key(min_version):
            raise RollbackError(f"{MANIFEST_FILE}: version {version} is older than {min_version}")
    return manifest


def verify_statement_bytes(
    envelope_bytes: bytes,
    files: Mapping[str, bytes | str],
    keys: Sequence[PublicKey],
    min_version: str | None = None,
) -> VerifiedArtifact:
    """Verify an artifact held in memory.

    ``files`` maps every file of the artifact (relative POSIX path, the attestation may be
    left out) to its content bytes or its sha256 hex digest; the manifest must be given as
    bytes. Returns the verified manifest, or raises the ``VerificationError`` subclass of
    the first check that refused.
    """
    verified = verify_statement(envelope_bytes, keys)
    check_names(verified, files)
    check_digests(verified, files)
    manifest_bytes = files[MANIFEST_FILE]
    if not isinstance(manifest_bytes, bytes):
        raise TypeError(f"{MANIFEST_FILE} must be given as bytes, not as a digest")
    manifest = check_manifest(manifest_bytes, min_version)
    return VerifiedArtifact(manifest=manifest, subjects=dict(verified.subjects), keyid=verified.keyid)


# -- I/O wrappers --------------------------------------------------------------------------


def _read_bounded(stream: IO[bytes], limit: int, name: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise MalformedAttestationError(f"{name}: larger than {limit} bytes")
    return data


def _hash_stream(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while block := stream.read(1 << 20):
        digest.update(block)
    return digest.hexdigest()


def _open_nofollow(path: Path, name: str) -> IO[bytes]:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError as e:
        raise MissingFileError(f"{name}: attested file is missing") from e
    except OSError as e:  # ELOOP: a symlink appeared since the walk
        raise UnsafePathError(f"{name!r}: cannot open without following links ({e.strerror})") from e
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePathError(f"{name!r}: only regular files are allowed in an artifact")
    return os.fdopen(fd, "rb")


def _finish(
    verified: VerifiedStatement, files: dict[str, bytes | str], min_version: str | None
) -> VerifiedArtifact:
    check_digests(verified, files)
    manifest_bytes = files[MANIFEST_FILE]
    assert isinstance(manifest_bytes, bytes)
    manifest = check_manifest(manifest_bytes, min_version)
    return VerifiedArtifact(manifest=manifest, subjects=dict(verified.subjects), keyid=verified.keyid)


def verify_tree(root: Path, keys: Sequence[PublicKey], min_version: str | None = None) -> VerifiedArtifact:
    """Verify an unpacked artifact directory (read-only: nothing under ``root`` changes)."""
    root = Path(root)
    try:
        if not root.is_dir():
            raise VerificationError(f"{root}: not a directory")
        with _open_nofollow(root / ATTESTATION_FILE, ATTESTATION_FILE) as f:
            envelope_bytes = _read_bounded(f, MAX_ATTESTATION_BYTES, ATTESTATION_FILE)
        # Signature first: nothing in the tree is read before the statement is trusted.
        verified = verify_statement(envelope_bytes, keys)
        entries = [(n, p) for n, p in iter_tree(root, error=UnsafePathError) if n != ATTESTATION_FILE]
        check_names(verified, (n for n, _ in entries))
        files: dict[str, bytes | str] = {}
        for name, path in entries:
            with _open_nofollow(path, name) as f:
                if name == MANIFEST_FILE:
                    files[name] = _read_bounded(f, MAX_MANIFEST_BYTES, name)
                else:
                    files[name] = _hash_stream(f)
        return _finish(verified, files, min_version)
    except VerificationError as e:
        e.where = e.where or str(root)
        raise


def verify_zip(path: Path, keys: Sequence[PublicKey], min_version: str | None = None) -> VerifiedArtifact:
    """Verify a zip artifact by reading it in memory/streaming; nothing is extracted to disk."""
    path = Path(path)
    try:
        try:
            zf = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as e:
            raise VerificationError(f"not a readable zip archive ({e})") from e
        with zf:
            entries = checked_zip_entries(zf)
            by_name = {info.filename: info for info in entries}
            total = sum(info.file_size for info in entries)
            if total > MAX_EXTRACT_BYTES:
                raise UnsafePathError(
                    f"archive unpacks to {total} bytes, over the {MAX_EXTRACT_BYTES}-byte limit"
                )
            att = by_name.pop(ATTESTATION_FILE, None)
            if att is None:
                raise MissingFileError(f"{ATTESTATION_FILE}: no attestation in the archive")
            envelope_bytes = _member_bytes(zf, att, MAX_ATTESTATION_BYTES)
            verified = verify_statement(envelope_bytes, keys)
            check_names(verified, by_name)
            files: dict[str, bytes | str] = {}
            for name, info in sorted(by_name.items()):
                if name == MANIFEST_FILE:
                    files[name] = _member_bytes(zf, info, MAX_MANIFEST_BYTES)
                else:
                    files[name] = _member_digest(zf, info)
            return _finish(verified, files, min_version)
    except VerificationError as e:
        e.where = e.where or str(path)
        raise


def _member_bytes(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    try:
        with zf.open(info) as f:
            return _read_bounded(f, limit, info.filename)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
        raise DigestMismatchError(f"{info.filename}: archive member is corrupt ({e})") from e


def _member_digest(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    # A member that fails its CRC or does not decompress cannot match any digest.
    try:
        with zf.open(info) as f:
            return _hash_stream(f)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
        raise DigestMismatchError(f"{info.filename}: archive member is corrupt ({e})") from e


def verify_tar(path: Path, keys: Sequence[PublicKey], min_version: str | None = None) -> VerifiedArtifact:
    """Verify a (compressed) tar bundle in one streaming pass; nothing is extracted to disk."""
    path = Path(path)
    try:
        files: dict[str, bytes | str] = {}
        dirs: set[str] = set()
        envelope_bytes: bytes | None = None
        total = 0
        try:
            with tarfile.open(path, mode="r|*") as tf:
                for member in tf:
                    name = check_relpath(member.name)
                    if member.isdir():
                        dirs.add(name)
                        continue
                    if not member.isreg():
                        raise UnsafePathError(f"{name!r}: tar member is not a regular file or directory")
                    if (
                        name in files
                        or name in dirs
                        or (name == ATTESTATION_FILE and envelope_bytes is not None)
                    ):
                        raise UnsafePathError(f"{name!r}: tar member appears twice")
                    total += member.size
                    if total > MAX_EXTRACT_BYTES:
                        raise UnsafePathError(f"archive unpacks to over {MAX_EXTRACT_BYTES} bytes")
                    stream = tf.extractfile(member)
                    assert stream is not None  # regular files always have one
                    if name == ATTESTATION_FILE:
                        envelope_bytes = _read_bounded(stream, MAX_ATTESTATION_BYTES, name)
                    elif name == MANIFEST_FILE:
                        files[name] = _read_bounded(stream, MAX_MANIFEST_BYTES, name)
                    else:
                        files[name] = _hash_stream(stream)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise VerificationError(f"not a readable tar archive ({e})") from e
        for name in files:
            parts = name.split("/")
            dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
        clash = sorted(dirs & files.keys())
        if clash:
            raise UnsafePathError(f"{clash[0]!r}: tar member is both a file and a directory")
        if envelope_bytes is None:
            raise MissingFileError(f"{ATTESTATION_FILE}: no attestation in the archive")
        verified = verify_statement(envelope_bytes, keys)
        check_names(verified, files)
        return _finish(verified, files, min_version)
    except VerificationError as e:
        e.where = e.where or str(path)
        raise


def verify_artifact(
    path: Path, keys: Sequence[PublicKey], min_version: str | None = None
) -> VerifiedArtifact:
    """Verify a directory, a zip or a tar bundle (recognised by content, not by name) offline.

    Returns the verified manifest, subjects and signing keyid, or raises the
    ``VerificationError`` subclass naming the check that refused; never returns False.
    """
    path = Path(path)
    if path.is_dir():
        return verify_tree(path, keys, min_version)
    if not path.is_file():
        raise MissingFileError("no such artifact", where=str(path))
    if zipfile.is_zipfile(path):
        return verify_zip(path, keys, min_version)
    if tarfile.is_tarfile(path):
        return verify_tar(path, keys, min_version)
    raise VerificationError("not a directory, zip or tar archive", where=str(path))
