"""The signed statement and what it vouches for: checks 1-10 of verification, pure.

1. the envelope is well-formed                        MalformedAttestationError
2. a trusted key signed it                            BadSignatureError
3. it holds an in-toto Statement v1 / SLSA v1         MalformedAttestationError
4. every subject name is safe and canonical           UnsafePathError
5. no subject is listed twice (nor twins by case/NFC) DuplicateSubjectError / UnsafePathError
6. the manifest is among the subjects, each subject   MalformedAttestationError
   carries a mode (0644 or 0755)
7. no file exists that the statement does not name    UnlistedFileError
8. every subject exists                               MissingFileError
9. ... with the attested sha256 and mode              DigestMismatchError
10. the manifest is readable and is what was asked    MalformedAttestationError / RollbackError /
    for (name, target, minimum version)               ExpectationError
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..manifest import ATTESTATION_FILE, MANIFEST_FILE, MANIFEST_SCHEMA
from .dsse import open_envelope, parse_envelope
from .errors import (
    DigestMismatchError,
    DuplicateSubjectError,
    ExpectationError,
    MalformedAttestationError,
    MissingFileError,
    RollbackError,
    UnlistedFileError,
    VerificationError,
)
from .names import check_relpath, check_unique
from .public_keys import PublicKey

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"

FILE_MODES = {"0644": 0o644, "0755": 0o755}
DIR_MODE = 0o755

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_VERSION_RE = re.compile(r"^\d+(\.\d+)*$")


def mode_text(mode: int) -> str:
    return f"{mode:04o}"


@dataclass(frozen=True)
class VerifiedStatement:
    """A statement whose signature verified (``keyid``; empty when read unverified) and whose
    subjects are well-formed."""

    statement: dict[str, Any]
    subjects: dict[str, str]  # path -> sha256 hex
    modes: dict[str, int]  # path -> 0o644 | 0o755
    keyid: str


@dataclass(frozen=True)
class Expectation:
    """What the caller asked for, beyond a valid signature."""

    name: str | None = None
    target: str | None = None
    min_version: str | None = None


@dataclass(frozen=True)
class VerifiedArtifact:
    """What verification vouches for: the manifest, every file's digest and mode, and who signed.

    ``keyid`` is empty when the artifact was read in the explicit unverified mode.
    """

    manifest: dict[str, Any]
    subjects: dict[str, str]
    modes: dict[str, int]
    keyid: str
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return bool(self.keyid)


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


def strict_json(data: bytes) -> Any:
    """RFC 8259 JSON with no repeated keys and no NaN/Infinity."""
    return json.loads(data, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)


def verify_statement(
    envelope_bytes: bytes, keys: Sequence[PublicKey], *, unverified: bool = False
) -> VerifiedStatement:
    """Checks 1-6: envelope, signature, statement type, subject names, duplicates, manifest, modes.

    ``unverified=True`` skips check 2 only (for running an artifact the caller chose not to
    verify, which says so loudly); the rest still applies.
    """
    try:
        envelope = strict_json(envelope_bytes)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise MalformedAttestationError(f"{ATTESTATION_FILE}: not JSON ({e})") from e
    try:
        if unverified:
            payload_type, payload, _ = parse_envelope(envelope)
            keyid = ""
        else:
            opened = open_envelope(envelope, keys)
            payload_type, payload, keyid = opened.payload_type, opened.payload, opened.keyid
    except VerificationError as e:
        raise _relabel(e, ATTESTATION_FILE) from e
    if payload_type != PAYLOAD_TYPE:
        raise MalformedAttestationError(
            f"{ATTESTATION_FILE}: payload type {payload_type!r} is not {PAYLOAD_TYPE}"
        )
    try:
        statement = strict_json(payload)
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
    modes: dict[str, int] = {}
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
        annotations = subject.get("annotations")
        mode = annotations.get("mode") if isinstance(annotations, dict) else None
        if mode not in FILE_MODES:
            raise MalformedAttestationError(
                f"{name}: subject has no mode annotation (0644 or 0755): {mode!r}"
            )
        subjects[name] = sha
        modes[name] = FILE_MODES[mode]
    check_unique(subjects)
    if MANIFEST_FILE not in subjects:
        raise MalformedAttestationError(f"{MANIFEST_FILE}: the statement does not cover the manifest")
    return VerifiedStatement(statement=statement, subjects=subjects, modes=modes, keyid=keyid)


def _first(names: list[str], what: str) -> str:
    more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
    return f"{names[0]}: {what}{more}"


def check_names(verified: VerifiedStatement, names: Iterable[str]) -> None:
    """Checks 7-8: the artifact's files (besides the attestation) are exactly the subjects."""
    present = set()
    for name in names:
        check_relpath(name)
        if name != ATTESTATION_FILE:
            present.add(name)
    unlisted = sorted(present - verified.subjects.keys())
    if unlisted:
        raise UnlistedFileError(_first(unlisted, "file is not listed in the statement"))
    missing = sorted(verified.subjects.keys() - present)
    if missing:
        raise MissingFileError(_first(missing, "attested file is missing"))


def check_digests(verified: VerifiedStatement, files: Mapping[str, bytes | str]) -> None:
    """Check 9: each file's sha256 (given as content bytes or a hex digest) is the attested one."""
    for name in sorted(verified.subjects):
        value = files[name]
        actual = hashlib.sha256(value).hexdigest() if isinstance(value, bytes) else value
        check_digest(verified, name, actual)


def check_digest(verified: VerifiedStatement, name: str, actual: str) -> None:
    expected = verified.subjects[name]
    if actual != expected:
        raise DigestMismatchError(f"{name}: sha256 {actual} does not match the attested {expected}")


def check_mode(verified: VerifiedStatement, name: str, mode: int) -> None:
    """Check 9, metadata: the file's mode is the signed one."""
    expected = verified.modes[name]
    if mode != expected:
        raise DigestMismatchError(f"{name}: mode {mode_text(mode)} is not the signed {mode_text(expected)}")


def version_key(version: str) -> tuple[int, ...]:
    parts = [int(p) for p in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def is_version(version: object) -> bool:
    return isinstance(version, str) and bool(_VERSION_RE.match(version))


def strict_json_object(data: bytes, name: str) -> dict[str, Any]:
    try:
        value = strict_json(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise MalformedAttestationError(f"{name}: not JSON ({e})") from e
    if not isinstance(value, dict):
        raise MalformedAttestationError(f"{name}: not a JSON object")
    return value


def check_manifest(manifest_bytes: bytes, expect: Expectation | None = None) -> dict[str, Any]:
    """Check 10: the (already digest-checked) manifest parses, names a project, a version and a
    target, and is what ``expect`` asks for."""
    manifest = strict_json_object(manifest_bytes, MANIFEST_FILE)
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise MalformedAttestationError(
            f"{MANIFEST_FILE}: schema {manifest.get('schema')!r} is not {MANIFEST_SCHEMA}"
        )
    version = manifest.get("version")
    if not is_version(version):
        raise MalformedAttestationError(f"{MANIFEST_FILE}: version {version!r} is not a numeric version")
    name = manifest.get("name")
    if not isinstance(name, str) or not name:
        raise MalformedAttestationError(f"{MANIFEST_FILE}: no project name")
    target = manifest.get("target")
    target_name = target.get("name") if isinstance(target, dict) else None
    if not isinstance(target_name, str) or not target_name:
        raise MalformedAttestationError(f"{MANIFEST_FILE}: no target name")
    if expect is not None:
        check_expectation(manifest, expect)
    return manifest


def check_expectation(manifest: Mapping[str, Any], expect: Expectation) -> None:
    """The manifest (already checked by ``check_manifest``) is the artifact asked for."""
    version = str(manifest["version"])
    if expect.min_version is not None:
        if not is_version(expect.min_version):
            raise ExpectationError(f"minimum version {expect.min_version!r} is not a numeric version")
        if version_key(version) < version_key(expect.min_version):
            raise RollbackError(
                f"{MANIFEST_FILE}: version {version} is older than the minimum {expect.min_version}"
            )
    if expect.name is not None and manifest["name"] != expect.name:
        raise ExpectationError(
            f"{MANIFEST_FILE}: project {manifest['name']!r} is not the expected {expect.name!r}"
        )
    target = manifest["target"]["name"]
    if expect.target is not None and target != expect.target:
        raise ExpectationError(f"{MANIFEST_FILE}: target {target!r} is not the expected {expect.target!r}")
