"""The parallel zip writer: same bytes for any thread count, stored vs deflated by content,
valid for zipfile, ``unzip -t`` and the trust reader (signed, verified), no zip64."""

from __future__ import annotations

import os
import random
import shutil
import stat
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest

from edgepack.errors import PackagingError
from edgepack.packaging import archive
from edgepack.packaging.archive import CHUNK, crc32_append_chunk, write_zip
from edgepack.runtime.trust.reader import verify_and_extract
from edgepack.signing.keys import load_public_keys
from edgepack.signing.verify import verify_artifact
from tests.signed_trees import manifest_for, sign_tree

EPOCH = 1700000000


def _text(n: int, seed: int) -> bytes:
    """Compressible but not trivial: words drawn at random."""
    rng = random.Random(seed)
    words = [b"import", b"numpy", b"def", b"return", b"self", b"lambda", b"tensor", b"(x)", b"\n", b"    "]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + b" "
    return bytes(out[:n])


def _noise(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


# Small and multi-chunk entries, compressible and not, an empty one, an exact CHUNK multiple.
FILES: dict[str, bytes] = {
    "handler.py": b"def handler(event, context):\n    return event\n" * 20,
    "empty.txt": b"",
    "one.txt": b"x",
    "model/model.tflite": _noise(50_000, 1),
    "lib/libbig.so": _text(3 * CHUNK + 12_345, 2),
    "lib/libexact.so": _text(2 * CHUNK, 3),
    "data/weights.bin": _noise(2 * CHUNK + 7, 4),
    "data/half.bin": _noise(CHUNK, 5) + _text(CHUNK + 99, 6),
    "caf\u00e9/labels.txt": "z\u00e9ro\nun\ndeux\n".encode() * 50,
}


def _tree(root: Path, files: dict[str, bytes] = FILES) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_crc32_of_a_chunk_appended() -> None:
    for head in (b"", b"a", _noise(70_001, 7)):
        tail = _noise(CHUNK, 8)
        assert crc32_append_chunk(zlib.crc32(head), zlib.crc32(tail)) == zlib.crc32(head + tail)


def test_same_bytes_for_any_thread_count_and_every_write(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    outputs = []
    for i, workers in enumerate((1, 2, 3, 8, 2)):
        dest = tmp_path / f"{i}.zip"
        write_zip(src, dest, epoch=EPOCH, workers=workers)
        outputs.append(dest.read_bytes())
    assert all(o == outputs[0] for o in outputs)


def test_stored_when_deflate_does_not_pay(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    dest = tmp_path / "a.zip"
    write_zip(src, dest, epoch=EPOCH, workers=2)
    with zipfile.ZipFile(dest) as zf:
        methods = {i.filename: i.compress_type for i in zf.infolist()}
        sizes = {i.filename: (i.compress_size, i.file_size) for i in zf.infolist()}
    stored = {name for name, method in methods.items() if method == zipfile.ZIP_STORED}
    # random bytes (one chunk and several), the empty file and a single byte are stored;
    # text is deflated, including multi-chunk text and a file half random, half text
    assert stored == {"model/model.tflite", "data/weights.bin", "empty.txt", "one.txt"}
    for name, (csize, usize) in sizes.items():
        if name in stored:
            assert csize == usize
        else:
            assert (usize - csize) * archive.STORE_BELOW >= usize, name


def test_readable_by_zipfile_and_unzip(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    (src / "lib" / "libbig.so").chmod(0o700)
    dest = tmp_path / "a.zip"
    write_zip(src, dest, epoch=EPOCH, workers=2)
    with zipfile.ZipFile(dest) as zf:
        assert zf.testzip() is None  # every CRC checked
        assert [i.filename for i in zf.infolist()] == sorted(FILES)
        for info in zf.infolist():
            assert zf.read(info) == FILES[info.filename]
            assert info.create_system == 3 and info.extra == b"" and info.comment == b""
            assert info.date_time == (2023, 11, 14, 22, 13, 20)
            executable = info.filename.endswith(".so")
            assert info.external_attr >> 16 == stat.S_IFREG | (0o755 if executable else 0o644)
    result = subprocess.run(["unzip", "-tq", str(dest)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No errors detected" in result.stdout


def test_same_bytes_as_zipfile_for_single_chunk_entries_at_level_9(tmp_path: Path) -> None:
    """Headers, central directory and end record are laid out exactly as zipfile lays them out."""
    files = {name: data for name, data in FILES.items() if len(data) <= CHUNK and len(data) > 100}
    files = {n: d for n, d in files.items() if "tflite" not in n}  # deflated entries only
    src = _tree(tmp_path / "src", files)
    ours = tmp_path / "ours.zip"
    write_zip(src, ours, epoch=EPOCH, level=9, workers=2)
    theirs = tmp_path / "theirs.zip"
    with zipfile.ZipFile(theirs, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, (2023, 11, 14, 22, 13, 20))
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            # ``compress_level`` from Python 3.13, ``_compresslevel`` before
            setattr(info, "compress_level" if hasattr(info, "compress_level") else "_compresslevel", 9)
            zf.writestr(info, files[name])
    assert ours.read_bytes() == theirs.read_bytes()


def test_signed_zip_verifies_through_the_trust_reader(tmp_path: Path) -> None:
    root = _tree(tmp_path / "artifact")
    manifest = manifest_for(
        "lambda-x86_64", "lambda", model={"file": "model/model.tflite", "format": "tflite"}
    )
    pub = sign_tree(root, tmp_path / "keys", manifest, epoch=EPOCH)
    dest = tmp_path / "digits.zip"
    write_zip(root, dest, epoch=EPOCH, workers=2)
    trusted = load_public_keys([pub])
    assert verify_artifact(dest, trusted).manifest == manifest
    verified = verify_and_extract(dest, tmp_path / "out", trusted)
    assert set(FILES) <= set(verified.subjects)
    for name, data in FILES.items():
        assert (tmp_path / "out" / name).read_bytes() == data


def test_zip64_sizes_and_counts_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tree(tmp_path / "src", {"a.txt": b"a" * 2000, "b.txt": b"b", "c.txt": b"c"})
    monkeypatch.setattr(archive, "_U32_LIMIT", 1000)
    with pytest.raises(PackagingError, match="a.txt: size .*zip64"):
        write_zip(src, tmp_path / "big.zip", epoch=EPOCH)
    monkeypatch.undo()
    monkeypatch.setattr(archive, "_COUNT_LIMIT", 3)
    with pytest.raises(PackagingError, match="number of files .*zip64"):
        write_zip(src, tmp_path / "many.zip", epoch=EPOCH)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", {"a.txt": b"a"})
    with pytest.raises(PackagingError, match="level 10"):
        write_zip(src, tmp_path / "a.zip", level=10)
    with pytest.raises(PackagingError, match="at least one"):
        write_zip(src, tmp_path / "a.zip", workers=0)


@pytest.mark.parametrize("size", [10, 3 * CHUNK])
def test_a_file_that_changes_while_archived_is_refused(tmp_path: Path, size: int) -> None:
    """The sizes come from the listing; a file that no longer has them is an error, not a bad zip."""
    path = tmp_path / "f.bin"
    path.write_bytes(_noise(size + 5, 9))
    entry = archive._Entry("f.bin", path, size, 0o644)
    with pytest.raises(PackagingError, match="changed while"):
        for offset, length in archive._chunks(size):
            archive._deflate(entry, offset, length, 6, offset + length == size)
    # a stored multi-chunk entry is copied from disk again: its CRC must still match
    shutil.copy(path, tmp_path / "g.bin")
    entry = archive._Entry("g.bin", tmp_path / "g.bin", size + 5, 0o644)
    with open(os.devnull, "wb") as sink, pytest.raises(PackagingError, match="changed while"):
        archive._copy_stored(entry, sink, crc=0)
