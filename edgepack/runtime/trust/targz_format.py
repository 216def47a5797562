"""The tar.gz reader: exactly one gzip member ending at the end of the file, one tar whose
first member is the attestation and whose end marker is followed by zero padding only."""

from __future__ import annotations

import io
import os
import tarfile
import zlib
from collections.abc import Iterator
from typing import IO

from ..manifest import ATTESTATION_FILE
from .errors import FormatError, MissingFileError, UnsafePathError
from .unpack import Unpack

_CHUNK = 1 << 20


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


def read_tar_gz(fd: int, unpack: Unpack) -> None:
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
