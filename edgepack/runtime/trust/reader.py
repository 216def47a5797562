"""The one trust path: verify an artifact and unpack it, from one open file handle.

``verify_and_extract`` opens the artifact once (``O_NOFOLLOW``, a regular file, bounded
size) and reads it in the format its kind names, never sniffed: a zip must start with a
local header at offset 0, end exactly with its end-of-central-directory record, and be
nothing but its entries and its central directory; a tar.gz must be exactly one gzip
member ending at the end of the file, holding one tar whose end marker is followed by
zero padding only, with ``attestation.dsse.json`` as its first member. The signature is
checked before any other member is hashed or written; each member is then hashed while
it is written (or only hashed, with ``dest=None``: the same code path) and compared
with the signed digest and mode. Names must be canonical (see ``names``), modes exactly
0644 or 0755 and the signed ones, and sizes and entry counts are bounded.

The formats are read by ``zip_format`` and ``targz_format``; every entry goes through
``unpack.Unpack`` (names, modes, limits, signature first, hash while writing).

``unverified=True`` is the explicit mode for running an artifact without trusted keys:
the same reader and checks, except the signature (and an artifact without an attestation
is allowed); callers must say loudly that what they run is unverified.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from ..manifest import ATTESTATION_FILE
from .errors import FormatError, MissingFileError, UnsafePathError, VerificationError
from .public_keys import PublicKey
from .statement import (
    Expectation,
    VerifiedArtifact,
    check_expectation,
    mode_text,
)
from .unpack import DEFAULT_LIMITS, MAX_ATTESTATION_BYTES, MAX_MANIFEST_BYTES, Limits, Unpack
from .zip_format import read_zip

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_ATTESTATION_BYTES",
    "MAX_MANIFEST_BYTES",
    "ArtifactKind",
    "Expectation",
    "Limits",
    "VerifiedArtifact",
    "kind_of",
    "verify_and_assemble",
    "verify_and_extract",
    "verify_tree",
]

ArtifactKind = Literal["zip", "tar.gz"]
KINDS: dict[str, ArtifactKind] = {".zip": "zip", ".tar.gz": "tar.gz"}
_CHUNK = 1 << 20


def kind_of(path: Path) -> ArtifactKind:
    """The artifact's format, by its file name (``*.zip``, ``*.tar.gz``); never by content."""
    name = Path(path).name
    for suffix, kind in KINDS.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return kind
    raise FormatError(
        "not a .zip or .tar.gz artifact: its kind cannot be told from its name", where=str(path)
    )


def _open_regular(path: Path, limit: int) -> tuple[int, int]:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as e:
        raise MissingFileError("no such artifact") from e
    except OSError as e:  # ELOOP: a symlink
        raise UnsafePathError(f"cannot open without following links ({e.strerror})") from e
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise FormatError("not a regular file")
    if st.st_size > limit:
        os.close(fd)
        raise FormatError(f"{st.st_size} bytes, over the {limit}-byte limit for an artifact")
    return fd, st.st_size


def verify_and_extract(
    path: Path,
    dest: Path | None,
    keys: Sequence[PublicKey],
    *,
    kind: ArtifactKind | None = None,
    expect: Expectation | None = None,
    unverified: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> VerifiedArtifact:
    """Verify the artifact at ``path`` and unpack it into ``dest`` (which must not exist).

    ``dest=None`` verifies only (the same code path; nothing is written). Raises the
    ``VerificationError`` subclass of the first check that refused, and then ``dest`` is
    absent; returns what was verified.
    """
    path = Path(path)
    try:
        kind = kind or kind_of(path)
        if kind not in KINDS.values():
            raise FormatError(f"unknown artifact kind {kind!r}")
        fd, size = _open_regular(path, limits.max_archive_bytes)
        try:
            unpack = Unpack(dest, keys, unverified, limits)
            try:
                if kind == "zip":
                    read_zip(fd, size, unpack)
                else:
                    from .targz_format import read_tar_gz  # tarfile: not loaded to read a zip

                    read_tar_gz(fd, unpack)
                return unpack.finish(expect)
            except BaseException:
                unpack.writer.abort()
                raise
        finally:
            os.close(fd)
    except VerificationError as e:
        e.where = e.where or str(path)
        raise


# -- a tree on disk, and files assembled from blobs -------------------------------------


def _read_fd(fd: int, size: int) -> Iterator[bytes]:
    remaining = size
    while remaining:
        block = os.read(fd, min(_CHUNK, remaining))
        if not block:
            raise FormatError("file shrank while it was read")
        remaining -= len(block)
        yield block


def _open_file(path: Path, name: str) -> tuple[int, os.stat_result]:
    # O_NONBLOCK: opening a FIFO planted in a tree must not wait for a writer.
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as e:
        raise MissingFileError(f"{name}: attested file is missing") from e
    except OSError as e:
        raise UnsafePathError(f"{name!r}: cannot open without following links ({e.strerror})") from e
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafePathError(f"{name!r}: only regular files are allowed in an artifact")
    return fd, st


def _read_small(path: Path, name: str, limit: int) -> bytes:
    fd, st = _open_file(path, name)
    try:
        if st.st_size > limit:
            raise FormatError(f"{name}: larger than {limit} bytes")
        return b"".join(_read_fd(fd, st.st_size))
    finally:
        os.close(fd)


def verify_tree(
    root: Path,
    keys: Sequence[PublicKey],
    *,
    expect: Expectation | None = None,
    unverified: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> VerifiedArtifact:
    """Verify an unpacked artifact directory in place (nothing under ``root`` changes): the
    signature first, then every name, mode and digest. Directories may not be writable by
    group or others, nor carry setuid, setgid or sticky bits."""
    root = Path(root)
    try:
        if root.is_symlink() or not root.is_dir():
            raise FormatError("not a directory")
        unpack = Unpack(None, keys, unverified, limits)
        attestation = root / ATTESTATION_FILE
        if os.path.lexists(attestation):
            unpack.count()
            unpack.attestation(_read_small(attestation, ATTESTATION_FILE, MAX_ATTESTATION_BYTES))
            unpack.names.add(ATTESTATION_FILE)
        unpack.ready()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            base = Path(dirpath)
            for dirname in sorted(dirnames):
                rel = (base / dirname).relative_to(root).as_posix()
                st = os.lstat(base / dirname)
                if stat.S_ISLNK(st.st_mode):
                    raise UnsafePathError(f"{rel!r}: symlinks are not allowed in an artifact")
                unpack.count()
                unpack.names.add(rel, is_dir=True)
                if stat.S_IMODE(st.st_mode) & 0o7022:
                    raise UnsafePathError(
                        f"{rel!r}: directory mode {mode_text(stat.S_IMODE(st.st_mode))} is unsafe"
                    )
            for filename in sorted(filenames):
                rel = (base / filename).relative_to(root).as_posix()
                if rel == ATTESTATION_FILE:
                    continue
                fd, st = _open_file(base / filename, rel)
                try:
                    unpack.count(1, st.st_size)
                    unpack.file(rel, stat.S_IMODE(st.st_mode), st.st_size, _read_fd(fd, st.st_size))
                finally:
                    os.close(fd)
        return unpack.finish(expect)
    except VerificationError as e:
        e.where = e.where or str(root)
        raise


def verify_and_assemble(
    envelope_bytes: bytes,
    blob_for: Callable[[str], Path | None],
    dest: Path,
    keys: Sequence[PublicKey],
    *,
    expect: Expectation | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> VerifiedArtifact:
    """Verify ``envelope_bytes``, then build the artifact in ``dest`` (which must not exist)
    from local files: ``blob_for(sha256_hex)`` names a file holding that content, or None
    (``MissingFileError``). Each subject is copied with its signed mode and hashed while
    copied; a refusal leaves ``dest`` absent."""
    unpack = Unpack(dest, keys, False, limits)
    try:
        if len(envelope_bytes) > MAX_ATTESTATION_BYTES:
            raise FormatError(f"{ATTESTATION_FILE}: larger than {MAX_ATTESTATION_BYTES} bytes")
        unpack.count(0)
        unpack.attestation(unpack.file(ATTESTATION_FILE, 0o644, len(envelope_bytes), iter((envelope_bytes,))))
        statement = unpack.statement
        assert statement is not None
        for name in sorted(statement.subjects):
            digest = statement.subjects[name]
            source = blob_for(digest)
            if source is None:
                raise MissingFileError(f"{name}: no local file holds sha256 {digest}")
            fd, st = _open_file(Path(source), name)
            try:
                unpack.count(1, st.st_size)
                unpack.file(name, statement.modes[name], st.st_size, _read_fd(fd, st.st_size))
            finally:
                os.close(fd)
        return unpack.finish(expect)
    except BaseException:
        unpack.writer.abort()
        raise


__all__ = [
    "DEFAULT_LIMITS",
    "ArtifactKind",
    "Expectation",
    "Limits",
    "VerifiedArtifact",
    "check_expectation",
    "kind_of",
    "verify_and_assemble",
    "verify_and_extract",
    "verify_tree",
]
