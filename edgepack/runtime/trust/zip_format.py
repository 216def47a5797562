"""The zip reader: one zip that starts at offset 0 and ends with its end-of-central-directory
record, nothing before, between or after; entries fed to ``Unpack`` with the attestation first."""

from __future__ import annotations

import os
import stat
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from ..manifest import ATTESTATION_FILE
from .errors import FormatError, UnsafePathError
from .unpack import Limits, Unpack

# Compressed input is read 64 KiB at a time: what it inflates to (a few hundred KiB) is still
# in the CPU cache when the CRC and then the sha256 read it. Stored members in bigger reads.
_DEFLATED_CHUNK = 64 << 10
_STORED_CHUNK = 256 << 10

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
    chunk = _STORED_CHUNK if inflater is None else _DEFLATED_CHUNK
    try:
        while remaining:
            raw = os.pread(fd, min(chunk, remaining), pos)
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


def read_zip(fd: int, size: int, unpack: Unpack) -> None:
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
