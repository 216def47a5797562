"""Blob downloads on a device: HTTP with Range resumption, local channels, size caps, and
refusal of anything whose digest is not the one asked for."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from edgepack.runtime.device.download import (
    ChannelURLError,
    DownloadError,
    DownloadStats,
    download_blob,
    fetch_bytes,
)
from edgepack.runtime.trust.errors import DigestMismatchError

from .http_channel import serving

SIZE = 3 << 20


@pytest.fixture
def blob(tmp_path: Path) -> tuple[Path, str, bytes]:
    data = os.urandom(SIZE)
    sha = hashlib.sha256(data).hexdigest()
    served = tmp_path / "channel" / "blobs" / "sha256"
    served.mkdir(parents=True)
    (served / sha).write_bytes(data)
    return tmp_path / "channel", sha, data


def _cache_is_empty(cache: Path) -> bool:
    return not cache.exists() or not any(cache.iterdir())


def test_http_download_lands_verified_in_the_cache(blob: tuple[Path, str, bytes], tmp_path: Path) -> None:
    root, sha, data = blob
    cache = tmp_path / "cache"
    stats = DownloadStats()
    with serving(root) as server:
        path = download_blob(f"{server.url}/blobs/sha256/{sha}", cache, sha, SIZE, stats=stats)
        assert [r.range for r in server.requests_for(sha)] == [None]
    assert path == cache / sha and path.read_bytes() == data
    assert (stats.bytes, stats.blobs, stats.resumed) == (SIZE, [sha], 0)
    assert sorted(p.name for p in cache.iterdir()) == [sha]


def test_interrupted_download_resumes_with_range(blob: tuple[Path, str, bytes], tmp_path: Path) -> None:
    root, sha, data = blob
    cache = tmp_path / "cache"
    stats = DownloadStats()
    cut = SIZE // 3
    with serving(root) as server:
        server.cut_after[f"/blobs/sha256/{sha}"] = cut
        path = download_blob(f"{server.url}/blobs/sha256/{sha}", cache, sha, SIZE, stats=stats)
        requests = server.requests_for(sha)
    assert [(r.range, r.status, r.sent) for r in requests] == [
        (None, 200, cut),
        (f"bytes={cut}-", 206, SIZE - cut),
    ]
    assert path.read_bytes() == data
    assert stats.bytes == SIZE  # nothing fetched twice
    assert stats.resumed == 1


def test_a_later_run_resumes_the_part_file(blob: tuple[Path, str, bytes], tmp_path: Path) -> None:
    root, sha, data = blob
    cache = tmp_path / "cache"
    cut = SIZE // 2
    with serving(root) as server:
        url = f"{server.url}/blobs/sha256/{sha}"
        server.cut_after[f"/blobs/sha256/{sha}"] = cut
        with pytest.raises(DownloadError) as caught:
            download_blob(url, cache, sha, SIZE, attempts=1)
        assert caught.value.exit_code == 1
        assert (cache / f"{sha}.part").stat().st_size == cut
        assert not (cache / sha).exists()
        stats = DownloadStats()
        download_blob(url, cache, sha, SIZE, stats=stats)
        assert [r.range for r in server.requests_for(sha)] == [None, f"bytes={cut}-"]
    assert (cache / sha).read_bytes() == data
    assert stats.bytes == SIZE - cut
    assert not (cache / f"{sha}.part").exists()


def test_corrupted_blob_is_refused_and_not_kept(blob: tuple[Path, str, bytes], tmp_path: Path) -> None:
    root, sha, data = blob
    cache = tmp_path / "cache"
    flipped = bytearray(data)
    flipped[SIZE // 2] ^= 0xFF
    with serving(root) as server:
        server.replace[f"/blobs/sha256/{sha}"] = bytes(flipped)
        with pytest.raises(DigestMismatchError) as caught:
            download_blob(f"{server.url}/blobs/sha256/{sha}", cache, sha, SIZE)
    assert caught.value.exit_code == 4
    assert "not the" in caught.value.hint()
    assert _cache_is_empty(cache)


def test_a_source_larger_than_listed_is_refused(blob: tuple[Path, str, bytes], tmp_path: Path) -> None:
    root, sha, data = blob
    cache = tmp_path / "cache"
    with serving(root) as server:
        server.replace[f"/blobs/sha256/{sha}"] = data + b"more"
        with pytest.raises(DigestMismatchError, match="more than"):
            download_blob(f"{server.url}/blobs/sha256/{sha}", cache, sha, SIZE)
    assert not (cache / sha).exists()


def test_missing_blob_is_a_download_error(blob: tuple[Path, str, bytes], tmp_path: Path) -> None:
    root, _, _ = blob
    with serving(root) as server, pytest.raises(DownloadError, match="HTTP 404"):
        download_blob(f"{server.url}/blobs/sha256/{'0' * 64}", tmp_path / "cache", "0" * 64, 10)
    assert _cache_is_empty(tmp_path / "cache")


@pytest.mark.parametrize("form", ["path", "file-url"])
def test_local_channels(blob: tuple[Path, str, bytes], tmp_path: Path, form: str) -> None:
    root, sha, data = blob
    source = root / "blobs" / "sha256" / sha
    location = str(source) if form == "path" else source.as_uri()
    path = download_blob(location, tmp_path / "cache", sha, SIZE)
    assert path.read_bytes() == data


def test_local_corrupt_blob_is_refused(blob: tuple[Path, str, bytes], tmp_path: Path) -> None:
    root, sha, _ = blob
    source = root / "blobs" / "sha256" / sha
    with open(source, "r+b") as f:
        f.write(b"\0\0\0\0")
    with pytest.raises(DigestMismatchError):
        download_blob(str(source), tmp_path / "cache", sha, SIZE)
    assert _cache_is_empty(tmp_path / "cache")


@pytest.mark.parametrize("location", ["ftp://example.com/x", "s3:///no-bucket/key", "gopher://h/"])
def test_bad_locations_are_bad_input(location: str, tmp_path: Path) -> None:
    with pytest.raises(ChannelURLError) as caught:
        download_blob(location, tmp_path / "cache", "0" * 64, 1)
    assert caught.value.exit_code == 2
    assert not (tmp_path / "cache").exists()


def test_a_digest_that_is_not_sha256_hex_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DigestMismatchError):
        download_blob(str(tmp_path / "x"), tmp_path / "cache", "../../etc/passwd", 1)
    assert not (tmp_path / "cache").exists()


def test_fetch_bytes_caps_the_index(blob: tuple[Path, str, bytes]) -> None:
    root, sha, _ = blob
    with serving(root) as server:
        url = f"{server.url}/blobs/sha256/{sha}"
        assert len(fetch_bytes(url, SIZE)) == SIZE
        with pytest.raises(DownloadError, match="larger than"):
            fetch_bytes(url, SIZE - 1)


def test_an_empty_file_is_a_blob_like_any_other(tmp_path: Path) -> None:
    # An empty file (an empty __init__.py) has a digest too; nothing is fetched for it.
    empty = hashlib.sha256(b"").hexdigest()
    served = tmp_path / "channel" / "blobs" / "sha256"
    served.mkdir(parents=True)
    (served / empty).write_bytes(b"")
    cache = tmp_path / "cache"
    with serving(tmp_path / "channel") as server:
        path = download_blob(f"{server.url}/blobs/sha256/{empty}", cache, empty, 0)
        assert server.requests_for(empty) == []
    assert path == cache / empty and path.read_bytes() == b""
    with pytest.raises(DigestMismatchError):
        download_blob(f"{server.url}/blobs/sha256/{'0' * 64}", tmp_path / "other", "0" * 64, 0)
