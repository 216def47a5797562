"""Fetching channel files onto a device: resumable, size-capped, verified before use.

A location is a plain path, a ``file://`` URL, an ``http(s)://`` URL (a presigned S3 URL
is one) or an ``s3://bucket/key`` (read through boto3, only when it is importable: a
device normally gets HTTPS URLs). A blob is downloaded into ``<hex>.part`` beside the
cache; after an interruption the next try asks for the rest (HTTP ``Range``), and the
file is hashed and moved into the cache only when its sha256 is the one asked for.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..failures import EdgepackError
from ..hashing import sha256_file
from ..trust.errors import DigestMismatchError
from .fsutil import fsync_dir

CHUNK = 1 << 16
TIMEOUT_S = 30.0
ATTEMPTS = 4
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class DownloadError(EdgepackError):
    """A channel file could not be fetched (network, server, missing object): try again later."""


class ChannelURLError(EdgepackError):
    """The channel location is not one the device can read."""

    exit_code = 2
    http_status = 400


@dataclass
class DownloadStats:
    """What crossed the wire: bytes received (every attempt counted), blobs fetched, resumptions."""

    bytes: int = 0
    blobs: list[str] = field(default_factory=list)
    resumed: int = 0


def check_location(location: str) -> str:
    """``location`` unchanged when its scheme is one the device reads, else ``ChannelURLError``."""
    scheme = urllib.parse.urlsplit(location).scheme
    if scheme in ("http", "https", "file", "s3") or (scheme == "" and location):
        if scheme == "s3" and not urllib.parse.urlsplit(location).netloc:
            raise ChannelURLError(f"{location}: an s3:// location needs a bucket")
        return location
    raise ChannelURLError(f"{location}: not a directory, file://, http(s):// or s3:// location")


def _local_path(location: str) -> Path:
    parts = urllib.parse.urlsplit(location)
    if parts.scheme == "file":
        return Path(urllib.parse.unquote(parts.path))
    return Path(location)


@contextlib.contextmanager
def _open_at(location: str, offset: int, timeout: float) -> Iterator[tuple[IO[bytes], int]]:
    """A stream of ``location`` from ``offset`` and the offset it really starts at (0 when
    the server ignored the range)."""
    scheme = urllib.parse.urlsplit(location).scheme
    if scheme in ("http", "https"):
        request = urllib.request.Request(location, headers={"Range": f"bytes={offset}-"} if offset else {})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and offset:  # the part file is already whole (or longer)
                yield io.BytesIO(), offset
                return
            raise DownloadError(f"HTTP {e.code} {e.reason}", where=_redact(location)) from e
        except (urllib.error.URLError, OSError) as e:
            raise DownloadError(f"cannot reach the channel ({e})", where=_redact(location)) from e
        with response:
            start = 0
            if response.status == 206:
                match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                if match is None:
                    raise DownloadError(
                        "partial answer without a usable Content-Range", where=_redact(location)
                    )
                start = int(match.group(1))
            yield response, start
        return
    if scheme == "s3":
        yield from _open_s3(location, offset)
        return
    path = _local_path(location)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the caller's with block
    except FileNotFoundError as e:
        raise DownloadError("not found", where=str(path)) from e
    except OSError as e:
        raise DownloadError(f"cannot read ({e.strerror or e})", where=str(path)) from e
    with f:
        f.seek(offset)
        yield f, offset


def _open_s3(location: str, offset: int) -> Iterator[tuple[IO[bytes], int]]:
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as e:
        raise ChannelURLError(
            f"{location}: reading s3:// needs boto3, which this device lacks; give the channel's HTTPS URL"
        ) from e
    parts = urllib.parse.urlsplit(location)
    args: dict[str, Any] = {"Bucket": parts.netloc, "Key": parts.path.lstrip("/")}
    if offset:
        args["Range"] = f"bytes={offset}-"
    try:
        answer = boto3.client("s3").get_object(**args)
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code == "InvalidRange" and offset:
            yield io.BytesIO(), offset
            return
        raise DownloadError(f"S3 {code or 'error'}", where=location) from e
    except BotoCoreError as e:
        raise DownloadError(f"cannot reach S3 ({e})", where=location) from e
    start = 0
    match = _CONTENT_RANGE.match(answer.get("ContentRange") or "")
    if match is not None:
        start = int(match.group(1))
    body = answer["Body"]
    try:
        yield body, start
    finally:
        body.close()


def _redact(location: str) -> str:
    # Presigned URLs carry credentials in the query; errors never print them.
    parts = urllib.parse.urlsplit(location)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def fetch_bytes(location: str, limit: int, *, timeout: float = TIMEOUT_S) -> bytes:
    """The whole of a small file (the channel index), refused when larger than ``limit``."""
    check_location(location)
    with _open_at(location, 0, timeout) as (stream, _):
        try:
            data = stream.read(limit + 1)
        except (OSError, http.client.HTTPException) as e:
            raise DownloadError(f"interrupted ({e})", where=_redact(location)) from e
    if len(data) > limit:
        raise DownloadError(f"larger than {limit} bytes", where=_redact(location))
    return data


def download_blob(
    location: str,
    cache: Path,
    sha256: str,
    size: int,
    *,
    stats: DownloadStats | None = None,
    attempts: int = ATTEMPTS,
    timeout: float = TIMEOUT_S,
) -> Path:
    """``cache/<sha256>``, fetched from ``location`` unless already there.

    Never more than ``size`` bytes are taken; an interrupted transfer leaves ``<sha256>.part``
    and the next attempt (in this call or a later run) resumes from its end. A file whose
    sha256 differs is deleted and refused (``DigestMismatchError``); nothing unverified
    is ever under the final name.
    """
    if not _SHA256.match(sha256):
        raise DigestMismatchError(f"{sha256!r} is not a sha256 hex digest")
    check_location(location)
    stats = stats if stats is not None else DownloadStats()
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / sha256
    if final.is_file():
        return final
    part = cache / f"{sha256}.part"
    last: DownloadError | None = None
    for _ in range(attempts):
        try:
            _fetch_into(location, part, size, stats, timeout)
            break
        except DownloadError as e:
            last = e
    else:
        assert last is not None
        raise last
    actual = sha256_file(part)
    if actual != sha256:
        part.unlink()
        raise DigestMismatchError(
            f"downloaded file has sha256 {actual}, not the {sha256} the channel index lists",
            where=_redact(location),
        )
    os.replace(part, final)
    fsync_dir(cache)
    stats.blobs.append(sha256)
    return final


def _fetch_into(location: str, part: Path, size: int, stats: DownloadStats, timeout: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    if have == size:
        if not part.exists():  # an empty file: nothing to fetch (its digest is still checked)
            part.touch()
        return
    with _open_at(location, have, timeout) as (stream, start):
        if start != have:  # the source ignored the range: start again
            have = 0
        elif have:
            stats.resumed += 1
        with open(part, "r+b" if have else "wb") as out:
            out.seek(have)
            out.truncate()
            try:
                while have < size:
                    block = stream.read(min(CHUNK, size - have))
                    if not block:
                        break
                    out.write(block)
                    have += len(block)
                    stats.bytes += len(block)
                if have == size and stream.read(1):
                    raise DigestMismatchError(
                        f"the source holds more than the {size} bytes the channel index lists",
                        where=_redact(location),
                    )
            except (OSError, http.client.HTTPException) as e:  # dropped: what arrived stays for the next try
                raise DownloadError(f"interrupted after {have} bytes ({e})", where=_redact(location)) from e
            finally:
                out.flush()
                os.fsync(out.fileno())
    if have < size:
        raise DownloadError(f"interrupted after {have} of {size} bytes", where=_redact(location))
