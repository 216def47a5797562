"""Deterministic zips, SOURCE_DATE_EPOCH, path rules, and extraction that refuses hostile entries."""

from __future__ import annotations

import hashlib
import os
import stat
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from edgepack.errors import ConfigError, FormatError, PackagingError, UnsafePathError
from edgepack.packaging.archive import (
    DEFLATE_LEVEL,
    ZIP_MIN_EPOCH,
    source_date_epoch,
    unsafe_path_reason,
    write_zip,
)
from edgepack.runtime.trust.reader import Limits, VerifiedArtifact, verify_and_extract


def safe_extract_zip(archive: Path, dest: Path, *, max_bytes: int = 2 << 30) -> VerifiedArtifact:
    """The trust path's unverified mode: every check but the signature."""
    return verify_and_extract(archive, dest, [], unverified=True, limits=Limits(max_bytes=max_bytes))


FILES: dict[str, bytes] = {
    "handler.py": b"def handler(event, context):\n    return event\n",
    "edgepack.json": b'{"schema": "edgepack.manifest/v1"}',
    "model/model.tflite": bytes(range(256)) * 16,
    "numpy/_core/_umath.cpython-312-x86_64-linux-gnu.so": b"\x7fELF" + bytes(500),
    "numpy.libs/libopenblas.so.0": b"\x7fELF" + bytes(100),
    "bin/tool": b"#!/bin/sh\necho hi\n",
    "b/z.txt": b"z",
    "a/z.txt": b"a",
    "caf\u00e9.txt": b"cafe",
}


def _tree(root: Path) -> Path:
    for name, data in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "bin" / "tool").chmod(0o700)
    (root / "empty-dir").mkdir()
    return root


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_zip_is_byte_identical_across_writes_and_mtimes(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    write_zip(src, tmp_path / "one.zip", epoch=1700000000)
    for path in src.rglob("*"):
        os.utime(path, (time.time() + 1000, time.time() + 1000))
    (src / "handler.py").chmod(0o600)  # permission noise beyond the exec bit is not recorded
    write_zip(src, tmp_path / "two.zip", epoch=1700000000)
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    # Same content written in another order on disk gives the same zip too.
    other = tmp_path / "other"
    for name in reversed(list(FILES)):
        (other / name).parent.mkdir(parents=True, exist_ok=True)
        (other / name).write_bytes(FILES[name])
    (other / "bin" / "tool").chmod(0o755)
    write_zip(other, tmp_path / "three.zip", epoch=1700000000)
    assert _sha(tmp_path / "three.zip") == _sha(tmp_path / "one.zip")
    assert _leftovers(tmp_path) == []


def test_zip_entries_sorted_stamped_and_moded(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    dest = tmp_path / "out" / "a.zip"
    write_zip(src, dest, epoch=1700000000)
    with zipfile.ZipFile(dest) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(FILES)  # sorted, no directory entries (empty-dir left out)
        assert zf.getinfo("model/model.tflite").compress_type == zipfile.ZIP_DEFLATED
        for info in infos:
            assert info.date_time == time.gmtime(1700000000)[:6]
            # deflated, or stored where deflate saves under 2 % (the tiny files here)
            deflated = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -15)
            size = len(deflated.compress(FILES[info.filename]) + deflated.flush())
            if (info.file_size - size) * 50 < info.file_size:
                assert info.compress_type == zipfile.ZIP_STORED, info.filename
                assert info.compress_size == info.file_size
            else:
                assert info.compress_type == zipfile.ZIP_DEFLATED, info.filename
                assert info.compress_size == size
            assert info.extra == b""
            assert info.create_system == 3
            mode = info.external_attr >> 16
            assert stat.S_ISREG(mode)
            executable = info.filename in ("bin/tool",) or ".so" in info.filename
            assert stat.S_IMODE(mode) == (0o755 if executable else 0o644), info.filename
            assert zf.read(info) == FILES[info.filename]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644


def test_source_date_epoch_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tree(tmp_path / "src")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1600000000")
    write_zip(src, tmp_path / "env.zip")
    write_zip(src, tmp_path / "explicit.zip", epoch=1600000000)
    assert _sha(tmp_path / "env.zip") == _sha(tmp_path / "explicit.zip")
    with zipfile.ZipFile(tmp_path / "env.zip") as zf:
        assert zf.infolist()[0].date_time == (2020, 9, 13, 12, 26, 40)
    write_zip(src, tmp_path / "later.zip", epoch=1700000000)
    assert _sha(tmp_path / "later.zip") != _sha(tmp_path / "env.zip")

    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    write_zip(src, tmp_path / "default.zip")
    with zipfile.ZipFile(tmp_path / "default.zip") as zf:
        assert zf.infolist()[0].date_time == (1980, 1, 1, 0, 0, 0)
    # SOURCE_DATE_EPOCH=0 is common; zip cannot go before 1980, so it is stamped 1980-01-01.
    write_zip(src, tmp_path / "zero.zip", epoch=0)
    assert _sha(tmp_path / "zero.zip") == _sha(tmp_path / "default.zip")


def test_source_date_epoch_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert source_date_epoch() == ZIP_MIN_EPOCH == 315532800
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "")
    assert source_date_epoch() == ZIP_MIN_EPOCH
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert source_date_epoch() == 0
    monkeypatch.setenv("SOURCE_DATE_EPOCH", " 1700000000\n")
    assert source_date_epoch() == 1700000000
    for bad in ("yesterday", "-1", "1.5", "1e9", "\u0661\u0662"):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", bad)
        with pytest.raises(ConfigError) as info:
            source_date_epoch()
        assert info.value.hint().startswith("SOURCE_DATE_EPOCH:")


def test_epoch_past_2107_is_refused(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    with pytest.raises(ConfigError, match="2107"):
        write_zip(src, tmp_path / "a.zip", epoch=5_000_000_000)
    assert not (tmp_path / "a.zip").exists()


def test_symlink_refused_and_nothing_left(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    (src / "link").symlink_to("/etc/passwd")
    with pytest.raises(PackagingError, match="symlink"):
        write_zip(src, tmp_path / "a.zip", epoch=0)
    assert not (tmp_path / "a.zip").exists() and _leftovers(tmp_path) == []


def test_zip_inside_its_own_tree_is_refused(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    with pytest.raises(PackagingError, match="inside the tree"):
        write_zip(src, src / "self.zip", epoch=0)


def test_existing_zip_replaced_atomically(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    dest = tmp_path / "a.zip"
    dest.write_bytes(b"old")
    write_zip(src, dest, epoch=0)
    assert zipfile.is_zipfile(dest) and _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "name, reason",
    [
        ("a/b.py", None),
        ("caf\u00e9/x", None),
        (".hidden/x", None),
        ("..x/y..", None),
        ("", "empty path"),
        ("../x", "'..' path component"),
        ("a/../../x", "'..' path component"),
        ("/etc/passwd", "absolute path"),
        ("a\\b", "backslash in path"),
        ("C:/x", "drive-letter path"),
        ("a//b", "empty path component"),
        ("a/", "empty path component"),
        ("./a", "'.' path component"),
        ("a\nb", "control character in path"),
        ("a\x00b", "control character in path"),
        ("bad\udcff", "path is not valid UTF-8"),
        ("a\x85b", "control character in path"),
        ("cafe\u0301/x", "path is not in Unicode NFC"),
        ("evil\u202egnp.py", "invisible format or bidi character in path"),
        ("a\u200eb", "invisible format or bidi character in path"),
        ("a\u2066b", "invisible format or bidi character in path"),
    ],
)
def test_unsafe_path_reason(name: str, reason: str | None) -> None:
    assert unsafe_path_reason(name) == reason


# -- safe extraction ------------------------------------------------------------------------


def test_safe_extract_round_trip(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    write_zip(src, tmp_path / "a.zip", epoch=0)
    names = safe_extract_zip(tmp_path / "a.zip", tmp_path / "out").subjects
    assert sorted(names) == sorted(FILES)
    for name, data in FILES.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    assert stat.S_IMODE((tmp_path / "out" / "bin" / "tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "out" / "handler.py").stat().st_mode) == 0o644
    assert _leftovers(tmp_path) == []


def _zip(path: Path, entries: list[tuple[str, bytes, int]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


REG = stat.S_IFREG | 0o644


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([("ok.py", b"x", REG), ("../evil.py", b"x", REG)], id="zip-slip"),
        pytest.param([("ok.py", b"x", REG), ("/tmp/evil.py", b"x", REG)], id="absolute"),
        pytest.param([("ok.py", b"x", REG), ("a\\..\\..\\evil", b"x", REG)], id="backslash"),
        pytest.param([("link", b"/etc/passwd", stat.S_IFLNK | 0o777), ("link/x", b"x", REG)], id="symlink"),
        pytest.param([("dev", b"", stat.S_IFCHR | 0o644)], id="device"),
        pytest.param([("a", b"x", REG), ("a/b", b"y", REG)], id="file-and-dir"),
    ],
)
def test_safe_extract_refuses_hostile_zips(tmp_path: Path, entries: list[tuple[str, bytes, int]]) -> None:
    archive = _zip(tmp_path / "hostile.zip", entries)
    with pytest.raises(UnsafePathError):
        safe_extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert _leftovers(tmp_path) == []
    assert not (tmp_path.parent / "evil.py").exists()


def test_safe_extract_refuses_duplicates(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="Duplicate"):
        archive = _zip(tmp_path / "dup.zip", [("a.py", b"good", REG), ("a.py", b"evil", REG)])
    with pytest.raises(UnsafePathError, match="twice"):
        safe_extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_safe_extract_refuses_zip_bombs_and_occupied_targets(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "big.zip", [("zeros", bytes(1 << 20), REG)])
    with pytest.raises(FormatError, match="over 1000 bytes"):
        safe_extract_zip(archive, tmp_path / "out", max_bytes=1000)
    (tmp_path / "full").mkdir()
    with pytest.raises(FileExistsError):
        safe_extract_zip(archive, tmp_path / "full")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all, but long enough to have an end record")
    with pytest.raises(FormatError, match="local header"):
        safe_extract_zip(junk, tmp_path / "out2")
