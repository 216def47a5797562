"""The device bundle's gzip: one member deflated in parallel, the same bytes for any thread
count and every write, readable by zlib, gzip, tarfile, GNU tar and the trust reader."""

from __future__ import annotations

import gzip
import io
import random
import shutil
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest

from edgepack.errors import PackagingError
from edgepack.packaging.archive import CHUNK, write_gzip
from edgepack.packaging.bundle import write_bundle
from edgepack.runtime.manifest import ATTESTATION_FILE
from edgepack.runtime.trust.reader import verify_and_extract
from edgepack.signing.keys import load_public_keys
from tests.signed_trees import manifest_for, sign_tree

EPOCH = 1700000000


def _data(n: int, seed: int) -> bytes:
    """Half noise, half repeated words: chunks that deflate well and chunks that do not."""
    rng = random.Random(seed)
    words = [b"tensor", b"import", b"\n", b"    ", b"0.125", b"openvino"]
    text = bytearray()
    while len(text) < n - n // 2:
        text += rng.choice(words) + b" "
    return rng.randbytes(n // 2) + bytes(text[: n - n // 2])


def _gzip(data: bytes, level: int = 6, workers: int = 1) -> bytes:
    out = io.BytesIO()
    write_gzip(data, out, level=level, workers=workers)
    return out.getvalue()


def _one_member(member: bytes) -> bytes:
    """What ``member`` inflates to, checking it is exactly one gzip member and nothing after."""
    inflater = zlib.decompressobj(31)
    data = inflater.decompress(member)
    assert inflater.eof and not inflater.unused_data and not inflater.unconsumed_tail
    return data


@pytest.mark.parametrize("size", [0, 1, 70_000, CHUNK, CHUNK + 1, 3 * CHUNK + 12_345])
def test_one_member_with_the_same_bytes_for_any_thread_count(size: int) -> None:
    data = _data(size, size)
    out = _gzip(data)
    assert _gzip(data, workers=2) == out
    assert _gzip(data, workers=4) == out
    assert _one_member(out) == data
    assert gzip.decompress(out) == data


@pytest.mark.parametrize("level", [1, 6, 9])
def test_a_single_chunk_is_what_gzipfile_writes(level: int) -> None:
    """Header (no name, mtime 0, XFL, OS 255), deflate stream and trailer alike."""
    data = _data(CHUNK, level)
    expected = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=expected, mtime=0, compresslevel=level) as gz:
        gz.write(data)
    assert _gzip(data, level) == expected.getvalue()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(PackagingError, match="level 10"):
        _gzip(b"x", level=10)
    with pytest.raises(PackagingError, match="0 gzip workers"):
        _gzip(b"x", workers=0)


def _tree(root: Path) -> Path:
    files = {
        "predict.py": b"def predict(x):\n    return x\n" * 50,
        "model/model.bin": _data(5 * CHUNK + 777, 1),  # several chunks
        "lib/libopenvino.so": _data(CHUNK, 2),
        "empty.txt": b"",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / ATTESTATION_FILE).write_text("{}")
    return root


def test_bundle_bytes_do_not_depend_on_workers_or_runs(tmp_path: Path) -> None:
    root = _tree(tmp_path / "tree")
    outs = set()
    for i, workers in enumerate([1, 2, 4, 2]):
        dest = tmp_path / f"b{i}.tar.gz"
        report = write_bundle(root, dest, EPOCH, workers=workers)
        assert report.bundle_bytes == dest.stat().st_size
        outs.add(dest.read_bytes())
    assert len(outs) == 1


def test_bundle_is_one_member_that_tarfile_and_gnu_tar_read(tmp_path: Path) -> None:
    root = _tree(tmp_path / "tree")
    dest = tmp_path / "b.tar.gz"
    write_bundle(root, dest, EPOCH, workers=2)
    raw = _one_member(dest.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        names = tf.getnames()
        assert names[0] == ATTESTATION_FILE
        for name in names:
            stream = tf.extractfile(name)
            assert stream is not None and stream.read() == (root / name).read_bytes()
    if shutil.which("tar") is None:
        pytest.skip("no tar on PATH")
    listed = subprocess.run(["tar", "-tzf", str(dest)], check=True, capture_output=True, text=True)
    assert listed.stdout.splitlines() == names


def test_an_empty_tree_is_an_empty_tar(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    dest = tmp_path / "b.tar.gz"
    report = write_bundle(tmp_path / "empty", dest, EPOCH)
    assert report.files == 0
    with tarfile.open(fileobj=io.BytesIO(_one_member(dest.read_bytes()))) as tf:
        assert tf.getnames() == []


def test_signed_bundle_verifies_through_the_trust_reader(tmp_path: Path) -> None:
    root = _tree(tmp_path / "artifact")
    (root / ATTESTATION_FILE).unlink()
    pub = sign_tree(
        root,
        tmp_path / "keys",
        manifest_for("intel-openvino", "device", model={"file": "model/model.bin", "format": "openvino"}),
        epoch=EPOCH,
    )
    dest = tmp_path / "digits.bundle.tar.gz"
    write_bundle(root, dest, EPOCH, workers=2)
    verified = verify_and_extract(dest, tmp_path / "out", load_public_keys([pub]))
    assert "model/model.bin" in verified.subjects
    model = Path("model", "model.bin")
    assert (tmp_path / "out" / model).read_bytes() == (root / model).read_bytes()
