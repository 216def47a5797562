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

``unverified=True`` is the explicit mode for running an artifact without trusted keys:
the same reader and checks, except the signature (and an artifact without an attestation
is allowed); callers must say loudly that what they run is unverified.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from ..manifest import ATTESTATION_FILE, MANIFEST_FILE
from .errors import FormatError, MissingFileError, UnlistedFileError, UnsafePathError, VerificationError
from .names import NameSet
from .public_keys import PublicKey
from .statement import (
    DIR_MODE,
    FILE_MODES,
    Expectation,
    VerifiedArtifact,
    VerifiedStatement,
    check_digest,
    check_expectation,
    check_manifest,
    check_mode,
    check_names,
    mode_text,
    strict_json_object,
    verify_statement,
)
from .tree_writer import TreeWriter

ArtifactKind = Literal["zip", "tar.gz"]
KINDS: dict[str, ArtifactKind] = {".zip": "zip", ".tar.gz": "tar.gz"}

MAX_ATTESTATION_BYTES = 64 << 20
MAX_MANIFEST_BYTES = 64 << 20
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Bounds on what one artifact may hold."""

    max_entries: int = 100_000
    max_bytes: int = 2 << 30  # unpacked, all files together
    max_archive_bytes: int = 4 << 30  # the archive file itself


DEFAULT_LIMITS = Limits()


def kind_of(path: Path) -> ArtifactKind:
    """The artifact's format, by its file name (``*.zip``, ``*.tar.gz``); never by content."""
    name = Path(path).name
    for suffix, kind in KINDS.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return kind
    raise FormatError(
        "not a .zip or .tar.gz artifact: its kind cannot be told from its name", where=str(path)
    )


# -- what both formats share ----------------------------------------------------------


class _Unpack:
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
            unpack = _Unpack(dest, keys, unverified, limits)
            try:
                if kind == "zip":
                    _read_zip(fd, size, unpack)
                else:
                    _read_tar_gz(fd, unpack)
                return unpack.finish(expect)
            except BaseException:
                unpack.writer.abort()
                raise
        finally:
            os.close(fd)
    except VerificationError as e:
        e.where = e.where or str(path)
        raise


# -- zip ------------------------------------------------------------------------------

_LOCAL = 0x04034B50
_CENTRAL = 0x02014B50
_END = 0x06054B50
_ZIP64_LOCATOR = 0x07064B50
_END_SIZE = 22
_CENTRAL_SIZE = 46
_LOCAL_SIZE = 30
_UNIX = 3
_MAX_CENTRAL_BYTES = 256 << 20


@dataclass(frozen=True)
class _ZipEntry:
    name: str
    is_dir: bool
    mode: int
    method: int
    crc: int
    csize: int
    usize: int
    offset: int  # of the local header
    data: int = 0  # of the data, once the local header is read


def _pread(fd: int, n: int, offset: int) -> bytes:
    data = os.pread(fd, n, offset)
    if len(data) != n:
        raise FormatError("truncated zip")
    return data


def _zip_name(raw: bytes, flags: int) -> str:
    if not flags & 0x800 and not raw.isascii():
        raise FormatError(f"{raw!r}: zip entry name is neither ASCII nor flagged UTF-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnsafePathError(f"{raw!r}: zip entry name is not valid UTF-8") from e


def _check_extra(extra: bytes, name: str) -> None:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 0x0001:
            raise FormatError(f"{name}: zip64 entries are not allowed")
        pos += 4 + length
    if pos != len(extra):
        raise FormatError(f"{name}: malformed zip extra field")


def _central_directory(fd: int, size: int, limits: Limits) -> tuple[list[_ZipEntry], int]:
    if size < _END_SIZE + _LOCAL_SIZE:
        raise FormatError("too short to be a zip")
    if _pread(fd, 4, 0) != struct.pack("<I", _LOCAL):
        raise FormatError("does not start with a zip local header at offset 0 (data prepended?)")
    end = size - _END_SIZE
    sig, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, comment = struct.unpack(
        "<IHHHHIIH", _pread(fd, _END_SIZE, end)
    )
    if sig != _END:
        raise FormatError(
            "does not end with a zip end-of-central-directory record (trailing data or a comment?)"
        )
    if comment:
        raise FormatError("zip comment is not allowed")
    if disk or cd_disk or n_disk != n_total:
        raise FormatError("multi-disk zips are not allowed")
    if end >= 20 and _pread(fd, 4, end - 20) == struct.pack("<I", _ZIP64_LOCATOR):
        raise FormatError("zip64 archives are not allowed")
    if n_total == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        raise FormatError("zip64 archives are not allowed")
    if cd_offset + cd_size != end:
        raise FormatError("central directory does not end where its end record starts (data inserted?)")
    if n_total == 0:
        raise FormatError("empty zip")
    if n_total > limits.max_entries:
        raise FormatError(f"{n_total} entries, over the limit of {limits.max_entries}")
    if cd_size > _MAX_CENTRAL_BYTES:
        raise FormatError(f"central directory of {cd_size} bytes is over the limit")
    cd = _pread(fd, cd_size, cd_offset)
    entries: list[_ZipEntry] = []
    pos = 0
    for _ in range(n_total):
        if pos + _CENTRAL_SIZE > cd_size:
            raise FormatError("central directory is truncated")
        (
            sig,
            made_by,
            _need,
            flags,
            method,
            _t,
            _d,
            crc,
            csize,
            usize,
            n_len,
            e_len,
            c_len,
            disk_start,
            _int_attr,
            ext_attr,
            offset,
        ) = struct.unpack_from("<IHHHHHHIIIHHHHHII", cd, pos)
        if sig != _CENTRAL:
            raise FormatError("malformed central directory")
        raw_name = cd[pos + _CENTRAL_SIZE : pos + _CENTRAL_SIZE + n_len]
        extra = cd[pos + _CENTRAL_SIZE + n_len : pos + _CENTRAL_SIZE + n_len + e_len]
        pos += _CENTRAL_SIZE + n_len + e_len + c_len
        if pos > cd_size:
            raise FormatError("central directory is truncated")
        name = _zip_name(raw_name, flags)
        _check_extra(extra, name)
        if made_by >> 8 != _UNIX:
            raise FormatError(
                f"{name!r}: zip entry made on system {made_by >> 8}, not Unix: it carries no mode"
            )
        if flags & 0x1:
            raise UnsafePathError(f"{name!r}: encrypted zip entry")
        if flags & 0x8:
            raise FormatError(f"{name!r}: zip entries with data descriptors are not allowed")
        if method not in (0, 8):
            raise FormatError(f"{name!r}: compression method {method} is not stored or deflate")
        if disk_start or csize == 0xFFFFFFFF or usize == 0xFFFFFFFF:
            raise FormatError(f"{name!r}: zip64 entries are not allowed")
        st_mode = ext_attr >> 16
        is_dir = name.endswith("/")
        if stat.S_ISLNK(st_mode):
            raise UnsafePathError(f"{name!r}: zip entry is a symlink; only regular files are allowed")
        wanted = stat.S_IFDIR if is_dir else stat.S_IFREG
        if stat.S_IFMT(st_mode) != wanted:
            raise UnsafePathError(f"{name!r}: zip entry is not a regular file or directory")
        if is_dir and (csize or usize):
            raise FormatError(f"{name!r}: a directory entry with content")
        entries.append(
            _ZipEntry(
                name.rstrip("/") if is_dir else name,
                is_dir,
                st_mode & 0o7777,
                method,
                crc,
                csize,
                usize,
                offset,
            )
        )
    if pos != cd_size:
        raise FormatError("central directory holds more than its entries")
    return _local_headers(fd, entries, cd_offset), sum(e.usize for e in entries)


def _local_headers(fd: int, entries: list[_ZipEntry], cd_offset: int) -> list[_ZipEntry]:
    """Each entry's local header agrees with the central directory, and the entries tile the
    file from offset 0 to the central directory with no gap and no overlap."""
    placed: list[_ZipEntry] = []
    expected = 0
    for entry in sorted(entries, key=lambda e: e.offset):
        if entry.offset != expected:
            raise FormatError(
                f"{entry.name!r}: zip entry at {entry.offset}, expected {expected} (gap or overlap)"
            )
        if entry.offset + _LOCAL_SIZE > cd_offset:
            raise FormatError(f"{entry.name!r}: local header out of range")
        sig, _need, flags, method, _t, _d, crc, csize, usize, n_len, e_len = struct.unpack(
            "<IHHHHHIIIHH", _pread(fd, _LOCAL_SIZE, entry.offset)
        )
        raw = _pread(fd, n_len + e_len, entry.offset + _LOCAL_SIZE) if n_len + e_len else b""
        name = _zip_name(raw[:n_len], flags)
        _check_extra(raw[n_len:], name)
        if sig != _LOCAL or (name.rstrip("/") if entry.is_dir else name) != entry.name:
            raise FormatError(f"{entry.name!r}: local header does not match the central directory")
        if (flags & 0x9, method, crc, csize, usize) != (0, entry.method, entry.crc, entry.csize, entry.usize):
            raise FormatError(f"{entry.name!r}: local header does not match the central directory")
        data = entry.offset + _LOCAL_SIZE + n_len + e_len
        expected = data + entry.csize
        if expected > cd_offset:
            raise FormatError(f"{entry.name!r}: zip entry runs into the central directory")
        placed.append(
            _ZipEntry(
                entry.name,
                entry.is_dir,
                entry.mode,
                entry.method,
                entry.crc,
                entry.csize,
                entry.usize,
                entry.offset,
                data,
            )
        )
    if expected != cd_offset:
        raise FormatError("data between the last zip entry and the central directory")
    return placed


def _zip_chunks(fd: int, entry: _ZipEntry) -> Iterator[bytes]:
    """The entry's content, inflated; never more than its declared size; CRC checked at the end."""
    inflater = zlib.decompressobj(-15) if entry.method == 8 else None
    pos, remaining, out, crc = entry.data, entry.csize, 0, 0
    try:
        while remaining:
            raw = os.pread(fd, min(_CHUNK, remaining), pos)
            if not raw:
                raise FormatError(f"{entry.name}: truncated zip member")
            pos += len(raw)
            remaining -= len(raw)
            if inflater is None:
                out += len(raw)
                crc = zlib.crc32(raw, crc)
                yield raw
                continue
            while raw:
                data = inflater.decompress(raw, entry.usize - out + 1)
                out += len(data)
                if out > entry.usize:
                    raise FormatError(
                        f"{entry.name}: member inflates beyond its declared {entry.usize} bytes"
                    )
                crc = zlib.crc32(data, crc)
                yield data
                raw = inflater.unconsumed_tail
                if inflater.eof:
                    if raw or remaining or inflater.unused_data:
                        raise FormatError(f"{entry.name}: data after the end of its compressed stream")
                    break
        if inflater is not None and not inflater.eof:
            raise FormatError(f"{entry.name}: compressed stream is truncated")
    except zlib.error as e:
        raise FormatError(f"{entry.name}: archive member is corrupt ({e})") from e
    if out != entry.usize:
        raise FormatError(f"{entry.name}: member holds {out} bytes, not its declared {entry.usize}")
    if crc != entry.crc:
        raise FormatError(f"{entry.name}: archive member is corrupt (CRC mismatch)")


def _read_zip(fd: int, size: int, unpack: _Unpack) -> None:
    entries, total = _central_directory(fd, size, unpack.limits)
    unpack.count(len(entries), total)
    # The attestation first, wherever it lies: nothing else is read before the signature checks.
    for entry in entries:
        if entry.name == ATTESTATION_FILE and not entry.is_dir:
            unpack.attestation(unpack.file(entry.name, entry.mode, entry.usize, _zip_chunks(fd, entry)))
    unpack.ready()
    for entry in entries:
        if entry.is_dir:
            unpack.directory(entry.name, entry.mode)
        elif entry.name != ATTESTATION_FILE:
            unpack.file(entry.name, entry.mode, entry.usize, _zip_chunks(fd, entry))


# -- tar.gz ---------------------------------------------------------------------------


class _Gunzip(io.RawIOBase):
    """Exactly one gzip member that ends at the end of the file, as a bounded byte stream.

    Remembers where the last non-zero byte was, so what follows the tar's end marker can
    be checked to be zero padding only.
    """

    def __init__(self, fd: int, limit: int) -> None:
        self._fd = fd
        self._limit = limit
        self._inflater = zlib.decompressobj(31)
        self._tail = b""
        self._pending = b""
        self._done = False
        self.total = 0
        self.last_nonzero = -1

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._done:
            self._fill()
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _fill(self) -> None:
        try:
            if not self._tail:
                self._tail = os.read(self._fd, 1 << 16)
                if not self._tail:
                    raise FormatError("truncated: the file ends inside the gzip stream")
            data = self._inflater.decompress(self._tail, _CHUNK)
            self._tail = self._inflater.unconsumed_tail
        except zlib.error as e:
            raise FormatError(f"not a valid gzip stream ({e})") from e
        if data:
            stripped = data.rstrip(b"\0")
            if stripped:
                self.last_nonzero = self.total + len(stripped) - 1
            self.total += len(data)
            if self.total > self._limit:
                raise FormatError(f"unpacks to over {self._limit} bytes")
            self._pending = data
        if self._inflater.eof:
            self._done = True
            if self._tail or self._inflater.unused_data or os.read(self._fd, 1):
                raise FormatError("data after the gzip member (a second member or another archive)")

    def drain(self) -> None:
        while not self._done:
            self._pending = b""
            self._fill()
        self._pending = b""


def _tar_chunks(stream: IO[bytes] | None, size: int) -> Iterator[bytes]:
    assert stream is not None  # regular members always have one
    remaining = size
    while remaining:
        block = stream.read(min(_CHUNK, remaining))
        if not block:
            raise FormatError("truncated tar member")
        remaining -= len(block)
        yield block


_TAR_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)
_NOT_FIRST = f"{ATTESTATION_FILE}: not the bundle's first member (the signature must come before any file)"


def _read_tar_gz(fd: int, unpack: _Unpack) -> None:
    limits = unpack.limits
    # Headers and padding: at most three 512-byte blocks per entry beyond the content, plus the end.
    gunzip = _Gunzip(fd, limits.max_bytes + 1536 * (limits.max_entries + 1) + (1 << 20))
    first = True
    try:
        with tarfile.open(fileobj=gunzip, mode="r|") as tf:
            for member in tf:
                name = member.name
                if member.type == tarfile.DIRTYPE:
                    unpack.count()
                    if first and not unpack.unverified:
                        raise MissingFileError(_NOT_FIRST)
                    unpack.ready()
                    unpack.directory(name, member.mode)
                elif member.type in _TAR_FILE_TYPES and member.sparse is None:
                    unpack.count(1, member.size)
                    if name == ATTESTATION_FILE:
                        if not first:
                            raise FormatError(f"{ATTESTATION_FILE} is not the bundle's first member")
                        unpack.attestation(
                            unpack.file(
                                name,
                                member.mode,
                                member.size,
                                _tar_chunks(tf.extractfile(member), member.size),
                            )
                        )
                    else:
                        if first and not unpack.unverified:
                            raise MissingFileError(_NOT_FIRST)
                        unpack.file(
                            name, member.mode, member.size, _tar_chunks(tf.extractfile(member), member.size)
                        )
                else:
                    what = (
                        "a symlink"
                        if member.issym()
                        else "a hardlink"
                        if member.islnk()
                        else "a special file"
                    )
                    raise UnsafePathError(
                        f"{name!r}: tar member is {what}; only regular files and directories"
                    )
                first = False
            end = tf.offset
        gunzip.drain()
    except (tarfile.TarError, EOFError) as e:
        raise FormatError(f"not a readable tar archive ({e})") from e
    if gunzip.total < end + 1024:
        raise FormatError("the tar has no end-of-archive marker (truncated?)")
    if gunzip.last_nonzero >= end:
        raise FormatError("data after the tar's end-of-archive marker")


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
        unpack = _Unpack(None, keys, unverified, limits)
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
    unpack = _Unpack(dest, keys, False, limits)
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
