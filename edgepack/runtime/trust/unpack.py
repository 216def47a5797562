"""What every archive entry goes through, whatever the format: names, modes, limits, the
signature before anything else, each file hashed while it is written (or only hashed)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..manifest import ATTESTATION_FILE, MANIFEST_FILE
from .errors import FormatError, MissingFileError, UnlistedFileError, UnsafePathError
from .names import NameSet
from .public_keys import PublicKey
from .statement import (
    DIR_MODE,
    FILE_MODES,
    Expectation,
    VerifiedArtifact,
    VerifiedStatement,
    check_digest,
    check_manifest,
    check_mode,
    check_names,
    mode_text,
    strict_json_object,
    verify_statement,
)
from .tree_writer import TreeWriter

MAX_ATTESTATION_BYTES = 64 << 20
MAX_MANIFEST_BYTES = 64 << 20


@dataclass(frozen=True)
class Limits:
    """Bounds on what one artifact may hold."""

    max_entries: int = 100_000
    max_bytes: int = 2 << 30  # unpacked, all files together
    max_archive_bytes: int = 4 << 30  # the archive file itself


DEFAULT_LIMITS = Limits()


class Unpack:
    """The checks every entry passes, in archive order, whatever the format."""

    def __init__(
        self, dest: Path | None, keys: Sequence[PublicKey], unverified: bool, limits: Limits
    ) -> None:
        self.keys = keys
        self.unverified = unverified
        self.limits = limits
        self.names = NameSet()
        self.statement: VerifiedStatement | None = None
        self.attested = False
        self.entries = 0
        self.total = 0
        self.digests: dict[str, str] = {}
        self.modes: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        self.manifest_bytes: bytes | None = None
        self.writer = TreeWriter(dest)

    def count(self, entries: int = 1, size: int = 0) -> None:
        self.entries += entries
        self.total += size
        if self.entries > self.limits.max_entries:
            raise FormatError(f"more than {self.limits.max_entries} entries")
        if self.total > self.limits.max_bytes:
            raise FormatError(f"unpacks to over {self.limits.max_bytes} bytes")

    def attestation(self, envelope: bytes) -> None:
        self.statement = verify_statement(envelope, self.keys, unverified=self.unverified)

    def ready(self) -> None:
        """Called before the first member that is not the attestation."""
        if self.statement is None and not self.unverified:
            raise MissingFileError(f"{ATTESTATION_FILE}: no attestation in the archive")

    def directory(self, name: str, mode: int) -> None:
        self.names.add(name, is_dir=True)
        if mode != DIR_MODE:
            raise UnsafePathError(f"{name!r}: directory mode {mode_text(mode)} is not 0755")
        self.writer.mkdir(name)

    def file(self, name: str, mode: int, size: int, chunks: Iterable[bytes]) -> bytes:
        """Check, then write or hash one file; returns its content for the attestation and manifest."""
        self.names.add(name)
        if mode not in FILE_MODES.values():
            raise UnsafePathError(f"{name!r}: file mode {mode_text(mode)} is not 0644 or 0755")
        is_attestation = name == ATTESTATION_FILE
        if is_attestation:
            if self.attested:
                raise UnsafePathError(f"{name!r}: appears twice")
            self.attested = True
            if mode != 0o644:
                raise UnsafePathError(f"{name!r}: mode {mode_text(mode)} is not 0644")
        else:
            self.ready()
            if self.statement is not None:
                if name not in self.statement.subjects:
                    raise UnlistedFileError(f"{name}: file is not listed in the statement")
                check_mode(self.statement, name, mode)
        keep = MAX_ATTESTATION_BYTES if is_attestation else MAX_MANIFEST_BYTES if name == MANIFEST_FILE else 0
        if keep and size > keep:
            raise FormatError(f"{name}: larger than {keep} bytes")
        digest, content = self.writer.write(name, chunks, mode, size, keep)
        if is_attestation:
            return content
        if self.statement is not None:
            check_digest(self.statement, name, digest)
        self.digests[name] = digest
        self.modes[name] = mode
        self.sizes[name] = size
        if name == MANIFEST_FILE:
            self.manifest_bytes = content
        return content

    def finish(self, expect: Expectation | None) -> VerifiedArtifact:
        self.ready()
        if self.statement is not None:
            check_names(self.statement, self.digests)
        if self.manifest_bytes is None:
            raise MissingFileError(f"{MANIFEST_FILE}: no manifest in the artifact")
        if self.unverified and expect is None:
            # Running unverified: the caller reads the fields it needs and says what is wrong.
            manifest = strict_json_object(self.manifest_bytes, MANIFEST_FILE)
        else:
            manifest = check_manifest(self.manifest_bytes, expect)
        self.writer.commit()
        return VerifiedArtifact(
            manifest=manifest,
            subjects=dict(sorted(self.digests.items())),
            modes=dict(sorted(self.modes.items())),
            keyid=self.statement.keyid if self.statement is not None else "",
            sizes=dict(sorted(self.sizes.items())),
        )
