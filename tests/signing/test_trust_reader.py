"""The one trust path refuses every case of issue 15's "Why now", through ``edgepack verify``
and ``edgepack invoke`` (with and without --key), on zips and tar.gz bundles alike; and the
reader's own guarantees: atomic extraction, one code path for verify-only and extract,
bounded sizes and counts, and archives read exactly as their kind says."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from hostile import (
    HANDLER,
    LAMBDA_MANIFEST,
    Entry,
    base_entries,
    envelope_for,
    signed_archive,
    tar_gz_bytes,
    zip_bytes,
)
from signing_helpers import make_tree, sample_provenance

from edgepack.cli.main import cli
from edgepack.errors import (
    DigestMismatchError,
    ExpectationError,
    FormatError,
    MalformedAttestationError,
    MissingFileError,
    RollbackError,
    UnsafePathError,
    VerificationError,
)
from edgepack.packaging.bundle import write_bundle
from edgepack.runtime.manifest import ATTESTATION_FILE, MANIFEST_FILE
from edgepack.runtime.trust.reader import (
    Expectation,
    Limits,
    kind_of,
    verify_and_assemble,
    verify_and_extract,
    verify_tree,
)
from edgepack.signing.attestation import attest_tree
from edgepack.signing.keys import Ed25519FileSigner, PublicKey

FORMS = ["zip", "tar.gz"]
Maker = Callable[[Path, Ed25519FileSigner, str], Path]


def _good(tmp: Path, signer: Ed25519FileSigner, form: str, name: str = "digits") -> Path:
    return signed_archive(tmp / f"{name}.{form}", base_entries(), signer)


def _with(*extra: Entry, drop: str | None = None, signed: dict[str, int] | None = None) -> Maker:
    def make(tmp: Path, signer: Ed25519FileSigner, form: str) -> Path:
        entries = [e for e in base_entries() if e.name != drop] + list(extra)
        return signed_archive(tmp / f"hostile.{form}", entries, signer, signed=signed)

    return make


def _manifest(**changes: object) -> Maker:
    def make(tmp: Path, signer: Ed25519FileSigner, form: str) -> Path:
        manifest = {k: v for k, v in {**LAMBDA_MANIFEST, **changes}.items() if v is not None}
        return signed_archive(tmp / f"hostile.{form}", base_entries(manifest), signer)

    return make


def _polyglot(tmp: Path, signer: Ed25519FileSigner, form: str) -> Path:
    """A gzip'd tar holding a hostile handler.py, followed by a validly signed zip."""
    evil = tar_gz_bytes([Entry("handler.py", b"import os; os.system('id')\n")])
    valid = _good(tmp, signer, "zip").read_bytes()
    path = tmp / f"polyglot.{form}"
    path.write_bytes(evil + valid)
    return path


def _prepended(tmp: Path, signer: Ed25519FileSigner, form: str) -> Path:
    path = tmp / f"prepended.{form}"
    path.write_bytes(b"#!/bin/sh\nexit 0\n" + _good(tmp, signer, form).read_bytes())
    return path


def _trailing(tmp: Path, signer: Ed25519FileSigner, form: str) -> Path:
    """A second gzip member (a tar with a hostile file) after the bundle; for a zip, after its end."""
    path = tmp / f"trailing.{form}"
    extra = tar_gz_bytes([Entry("handler.py", b"print('pwned')\n")])
    path.write_bytes(_good(tmp, signer, form).read_bytes() + extra)
    return path


def _twins(first: str, second: str) -> Maker:
    return _with(Entry(first, b"one"), Entry(second, b"two"))


WHY_NOW: list[object] = [
    pytest.param(_polyglot, FormatError, "", id="polyglot"),
    pytest.param(_prepended, FormatError, "", id="prepended-data"),
    pytest.param(_trailing, FormatError, "", id="trailing-gzip-member"),
    pytest.param(
        _with(Entry("handler.py", HANDLER, 0o4755), drop="handler.py"), UnsafePathError, "4755", id="setuid"
    ),
    pytest.param(
        _with(Entry("model/model.tflite", b"m", 0o777), drop="model/model.tflite"),
        UnsafePathError,
        "0777",
        id="0777-model",
    ),
    pytest.param(_with(Entry("data", is_dir=True, mode=0o2777)), UnsafePathError, "2777", id="2777-dir"),
    pytest.param(
        _with(Entry("run.sh", b"#!/bin/sh\n", 0o755), signed={"run.sh": 0o644}),
        DigestMismatchError,
        "not the signed 0644",
        id="mode-not-signed",
    ),
    pytest.param(
        _twins("data/caf\u00e9.txt", "data/cafe\u0301.txt"), UnsafePathError, "NFC", id="nfc-nfd-twins"
    ),
    pytest.param(_twins("Handler.py", "data/x"), UnsafePathError, "same file", id="case-twins"),
    pytest.param(_with(Entry("model/evil\u202egnp.py", b"x")), UnsafePathError, "bidi", id="bidi-name"),
    pytest.param(_with(Entry("model/a\x1bb.py", b"x")), UnsafePathError, "control", id="control-char"),
    pytest.param(
        _manifest(target=None), MalformedAttestationError, "no target", id="manifest-without-target"
    ),
    pytest.param(
        _manifest(name=None), MalformedAttestationError, "no project name", id="manifest-without-name"
    ),
]


def _verify_cli(path: Path, pub: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["verify", str(path), "--key", str(pub), *args])
    return result.exit_code, result.output


def _invoke_cli(path: Path, pub: Path | None, tmp: Path) -> tuple[int, str]:
    event = tmp / "event.json"
    event.write_text("{}")
    args = ["invoke", str(path), "--event", str(event), *(["--key", str(pub)] if pub else [])]
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output


def _one_line_reason(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("edgepack: error:")]
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("make, error, reason", WHY_NOW)
def test_why_now_refused_by_verify(
    tmp_path: Path,
    signer: Ed25519FileSigner,
    trusted: list[PublicKey],
    keypair: tuple[Path, Path],
    form: str,
    make: Maker,
    error: type[VerificationError],
    reason: str,
) -> None:
    artifact = make(tmp_path, signer, form)
    with pytest.raises(VerificationError) as info:
        verify_and_extract(artifact, None, trusted)
    assert type(info.value) is error, info.value.hint()
    assert reason in info.value.hint()
    code, output = _verify_cli(artifact, keypair[1])
    assert code == 4, output
    assert reason in _one_line_reason(output)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("make, error, reason", WHY_NOW)
def test_why_now_refused_by_invoke(
    tmp_path: Path,
    signer: Ed25519FileSigner,
    keypair: tuple[Path, Path],
    form: str,
    make: Maker,
    error: type[VerificationError],
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "sandboxes"))
    (tmp_path / "sandboxes").mkdir()
    artifact = make(tmp_path, signer, form)
    code, output = _invoke_cli(artifact, keypair[1], tmp_path)
    assert code == 4, output
    line = _one_line_reason(output)
    if form == "zip":
        assert reason in line
    if error is not MalformedAttestationError:
        # Without --key the same reader runs, unverified: format, name and mode checks still refuse.
        code, output = _invoke_cli(artifact, None, tmp_path)
        assert code == 4, output
        assert "UNVERIFIED" in output
        _one_line_reason(output)
    assert os.listdir(tmp_path / "sandboxes") == []  # nothing left behind


@pytest.mark.parametrize(
    "args, reason",
    [
        (["--min-version", "1.0.1"], "older than the minimum 1.0.1"),
        (["--name", "other"], "not the expected 'other'"),
        (["--target", "rpi-tflite"], "not the expected 'rpi-tflite'"),
        (["--min-version", "one"], "not a numeric version"),
    ],
)
@pytest.mark.parametrize("form", FORMS)
def test_expectations_refused(
    tmp_path: Path,
    signer: Ed25519FileSigner,
    keypair: tuple[Path, Path],
    form: str,
    args: list[str],
    reason: str,
) -> None:
    code, output = _verify_cli(_good(tmp_path, signer, form), keypair[1], *args)
    assert code == 4, output
    assert reason in _one_line_reason(output)


@pytest.mark.parametrize("form", FORMS)
def test_expectations_met(
    tmp_path: Path, signer: Ed25519FileSigner, trusted: list[PublicKey], keypair: tuple[Path, Path], form: str
) -> None:
    artifact = _good(tmp_path, signer, form)
    args = ["--min-version", "1.0", "--name", "digits", "--target", "lambda-x86_64"]
    code, output = _verify_cli(artifact, keypair[1], *args)
    assert code == 0, output
    assert "digits 1.0.0 for lambda-x86_64" in output
    with pytest.raises(RollbackError):
        verify_and_extract(artifact, None, trusted, expect=Expectation(min_version="2"))
    with pytest.raises(ExpectationError):
        verify_and_extract(artifact, None, trusted, expect=Expectation(target="jetson-trt"))


# -- the reader's own guarantees --------------------------------------------------------


def _tampered_last_file(tmp: Path, signer: Ed25519FileSigner, form: str) -> Path:
    """Signed for one model, carrying another: refused only after earlier files were written."""
    good = base_entries()
    envelope = envelope_for(good, signer)
    bad = [*good[:-1], Entry("model/model.tflite", b"TFL3 swapped")]
    entries = [Entry(ATTESTATION_FILE, envelope), *bad]
    path = tmp / f"tampered.{form}"
    path.write_bytes(zip_bytes(entries) if form == "zip" else tar_gz_bytes(entries))
    return path


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    "make",
    [_tampered_last_file, _polyglot, _with(Entry("handler.py", HANDLER, 0o4755), drop="handler.py")],
    ids=["tampered", "polyglot", "setuid"],
)
def test_refusal_is_atomic_and_verify_only_shares_the_path(
    tmp_path: Path, signer: Ed25519FileSigner, trusted: list[PublicKey], form: str, make: Maker
) -> None:
    artifact = make(tmp_path, signer, form)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VerificationError) as only:
        verify_and_extract(artifact, None, trusted)
    with pytest.raises(VerificationError) as extracting:
        verify_and_extract(artifact, out / "dest", trusted)
    assert (type(only.value), only.value.hint()) == (type(extracting.value), extracting.value.hint())
    assert os.listdir(out) == []  # neither dest nor its temporary sibling


@pytest.mark.parametrize("form", FORMS)
def test_extracts_with_signed_modes(
    tmp_path: Path, signer: Ed25519FileSigner, trusted: list[PublicKey], form: str
) -> None:
    entries = [
        *base_entries(),
        Entry("bin/run.sh", b"#!/bin/sh\n", 0o755),
        Entry("bin", is_dir=True, mode=0o755),
    ]
    artifact = signed_archive(tmp_path / f"ok.{form}", entries, signer)
    os.umask(0o077)
    try:
        verified = verify_and_extract(artifact, tmp_path / "dest", trusted)
    finally:
        os.umask(0o022)
    dest = tmp_path / "dest"
    assert verified.modes["bin/run.sh"] == 0o755 and verified.modes["handler.py"] == 0o644
    assert (dest / "bin" / "run.sh").stat().st_mode & 0o7777 == 0o755
    assert (dest / "handler.py").stat().st_mode & 0o7777 == 0o644
    assert (dest / "model").stat().st_mode & 0o7777 == 0o755
    assert (dest / "handler.py").read_bytes() == HANDLER
    assert verify_tree(dest, trusted).subjects == verified.subjects
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", f"ok.{form}"]
    with pytest.raises(FileExistsError):
        verify_and_extract(artifact, dest, trusted)


def _patch_zip_sizes(data: bytes, name: str, usize: int) -> bytes:
    """Declare ``usize`` for ``name`` in its local header and central directory entry."""
    raw = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(name)
    struct.pack_into("<I", raw, info.header_offset + 22, usize)
    pos = struct.unpack_from("<I", raw, len(raw) - 22 + 16)[0]  # the central directory's offset
    while (
        struct.unpack_from("<H", raw, pos + 28)[0] != len(name)
        or raw[pos + 46 : pos + 46 + len(name)] != name.encode()
    ):
        n_len, e_len, c_len = struct.unpack_from("<HHH", raw, pos + 28)
        pos += 46 + n_len + e_len + c_len
    struct.pack_into("<I", raw, pos + 24, usize)
    return bytes(raw)


def test_member_inflating_past_its_declared_size(
    tmp_path: Path, signer: Ed25519FileSigner, trusted: list[PublicKey]
) -> None:
    artifact = _good(tmp_path, signer, "zip")
    artifact.write_bytes(_patch_zip_sizes(artifact.read_bytes(), "model/model.tflite", 10))
    with pytest.raises(FormatError, match="inflates beyond its declared 10 bytes"):
        verify_and_extract(artifact, tmp_path / "dest", trusted)
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("form", FORMS)
def test_bounds(tmp_path: Path, signer: Ed25519FileSigner, trusted: list[PublicKey], form: str) -> None:
    artifact = _good(tmp_path, signer, form)
    with pytest.raises(FormatError, match="entries"):
        verify_and_extract(artifact, None, trusted, limits=Limits(max_entries=2))
    with pytest.raises(FormatError, match="over"):
        verify_and_extract(artifact, None, trusted, limits=Limits(max_bytes=100))
    with pytest.raises(FormatError, match="limit"):
        verify_and_extract(artifact, None, trusted, limits=Limits(max_archive_bytes=100))


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9, -1])
def test_truncated_archive(
    tmp_path: Path, signer: Ed25519FileSigner, trusted: list[PublicKey], form: str, keep: float
) -> None:
    artifact = _good(tmp_path, signer, form)
    data = artifact.read_bytes()
    artifact.write_bytes(data[: int(len(data) * keep)] if keep > 0 else data[:-1])
    with pytest.raises(FormatError):
        verify_and_extract(artifact, tmp_path / "dest", trusted)
    assert not (tmp_path / "dest").exists()


def test_bundle_attestation_must_come_first(
    tmp_path: Path, signer: Ed25519FileSigner, trusted: list[PublicKey]
) -> None:
    entries = base_entries()
    envelope = envelope_for(entries, signer)
    path = tmp_path / "late.tar.gz"
    path.write_bytes(tar_gz_bytes([*entries, Entry(ATTESTATION_FILE, envelope)]))
    with pytest.raises(MissingFileError, match="first member"):
        verify_and_extract(path, None, trusted)


def test_data_after_the_tar_end_marker(
    tmp_path: Path, signer: Ed25519FileSigner, trusted: list[PublicKey]
) -> None:
    raw = gzip.decompress(_good(tmp_path, signer, "tar.gz").read_bytes())
    hidden = raw + b"\0" * 512 + b"hidden"
    path = tmp_path / "hidden.tar.gz"
    path.write_bytes(gzip.compress(hidden))
    with pytest.raises(FormatError, match="end-of-archive"):
        verify_and_extract(path, None, trusted)
    path.write_bytes(gzip.compress(raw + b"\0" * 4096))  # zero padding is fine
    assert verify_and_extract(path, None, trusted).manifest["name"] == "digits"


def test_the_kind_comes_from_the_name_never_the_content(
    tmp_path: Path, signer: Ed25519FileSigner, trusted: list[PublicKey]
) -> None:
    assert kind_of(Path("a.zip")) == "zip" and kind_of(Path("a.b.tar.gz")) == "tar.gz"
    for name in ("a.tar", "a.tgz", ".zip", "zip"):
        with pytest.raises(FormatError):
            kind_of(Path(name))
    zipped = _good(tmp_path, signer, "zip")
    renamed = tmp_path / "zip-named.tar.gz"
    renamed.write_bytes(zipped.read_bytes())
    with pytest.raises(FormatError):
        verify_and_extract(renamed, None, trusted)
    assert verify_and_extract(renamed, None, trusted, kind="zip").keyid


def test_the_artifact_is_opened_without_following_links(
    tmp_path: Path, signer: Ed25519FileSigner, trusted: list[PublicKey]
) -> None:
    link = tmp_path / "link.zip"
    link.symlink_to(_good(tmp_path, signer, "zip"))
    with pytest.raises(UnsafePathError):
        verify_and_extract(link, None, trusted)


@pytest.mark.parametrize("form", FORMS)
def test_unsigned_archive(
    tmp_path: Path, signer: Ed25519FileSigner, trusted: list[PublicKey], form: str
) -> None:
    path = signed_archive(tmp_path / f"plain.{form}", base_entries(), signer, sign=False)
    with pytest.raises(MissingFileError, match=ATTESTATION_FILE):
        verify_and_extract(path, None, trusted)
    unverified = verify_and_extract(path, tmp_path / "dest", [], unverified=True)
    assert unverified.keyid == "" and not unverified.verified
    assert (tmp_path / "dest" / "handler.py").read_bytes() == HANDLER
    twins = signed_archive(
        tmp_path / f"twins.{form}", [*base_entries(), Entry("HANDLER.PY", b"x")], signer, sign=False
    )
    with pytest.raises(UnsafePathError, match="same file"):
        verify_and_extract(twins, None, [], unverified=True)


def test_assemble_from_blobs(tmp_path: Path, signer: Ed25519FileSigner, trusted: list[PublicKey]) -> None:
    entries = [*base_entries(), Entry("bin/run.sh", b"#!/bin/sh\n", 0o755)]
    envelope = envelope_for(entries, signer)
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    for e in entries:
        (blobs / hashlib.sha256(e.data).hexdigest()).write_bytes(e.data)

    def blob_for(digest: str) -> Path | None:
        path = blobs / digest
        return path if path.exists() else None

    verified = verify_and_assemble(envelope, blob_for, tmp_path / "slot", trusted)
    assert (tmp_path / "slot" / "bin" / "run.sh").stat().st_mode & 0o7777 == 0o755
    assert verify_tree(tmp_path / "slot", trusted).subjects == verified.subjects
    handler = blobs / hashlib.sha256(HANDLER).hexdigest()
    handler.write_bytes(b"swapped")
    with pytest.raises(DigestMismatchError, match="handler.py"):
        verify_and_assemble(envelope, blob_for, tmp_path / "slot2", trusted)
    handler.unlink()
    with pytest.raises(MissingFileError, match="handler.py"):
        verify_and_assemble(envelope, blob_for, tmp_path / "slot3", trusted)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blobs", "slot"]


def test_tree_modes_are_checked(tmp_path: Path, signer: Ed25519FileSigner, trusted: list[PublicKey]) -> None:
    root = make_tree(tmp_path / "tree")
    attest_tree(root, signer, sample_provenance())
    assert verify_tree(root, trusted).modes[MANIFEST_FILE] == 0o644
    (root / "handler.py").chmod(0o755)
    with pytest.raises(DigestMismatchError, match="not the signed 0644"):
        verify_tree(root, trusted)
    (root / "handler.py").chmod(0o4644)
    with pytest.raises(UnsafePathError, match="4644"):
        verify_tree(root, trusted)
    (root / "handler.py").chmod(0o644)
    (root / "model").chmod(0o777)
    with pytest.raises(UnsafePathError, match="0777"):
        verify_tree(root, trusted)


def test_bundle_writer_puts_the_attestation_first(
    tmp_path: Path, signer: Ed25519FileSigner, trusted: list[PublicKey]
) -> None:
    root = make_tree(tmp_path / "tree")
    (root / "bin").mkdir()
    (root / "bin" / "run").write_bytes(b"#!/bin/sh\n")
    (root / "bin" / "run").chmod(0o775)
    attest_tree(root, signer, sample_provenance())
    write_bundle(root, tmp_path / "b.tar.gz", 0)
    with tarfile.open(tmp_path / "b.tar.gz") as tf:
        members = tf.getmembers()
    assert members[0].name == ATTESTATION_FILE
    assert {m.name: m.mode for m in members}["bin/run"] == 0o755
    assert verify_and_extract(tmp_path / "b.tar.gz", None, trusted).modes["bin/run"] == 0o755
    statement = json.loads(base64.b64decode(json.loads(members_bytes(tmp_path / "b.tar.gz"))["payload"]))
    assert {s["name"]: s["annotations"]["mode"] for s in statement["subject"]}["bin/run"] == "0755"


def members_bytes(bundle: Path) -> bytes:
    with tarfile.open(bundle) as tf:
        stream = tf.extractfile(ATTESTATION_FILE)
        assert stream is not None
        return stream.read()


def test_the_reader_runs_on_a_device_without_the_build_side_or_cryptography(
    tmp_path: Path, signer: Ed25519FileSigner
) -> None:
    """A clean interpreter (no site-packages) imports the trust path from the shipped
    ``edgepack_runtime`` package and unpacks an artifact in the unverified mode; checking a
    signature is the only thing that needs ``cryptography``."""
    from edgepack.resources import runtime_package_dir

    shipped = tmp_path / "site"
    shipped.mkdir()
    (shipped / "edgepack_runtime").symlink_to(runtime_package_dir())
    artifact = _good(tmp_path, signer, "zip")
    code = f"""
import sys
sys.path[:] = [p for p in sys.path if "site-packages" not in p] + [{str(shipped)!r}]
from pathlib import Path
import edgepack_runtime.trust.reader as reader
v = reader.verify_and_extract(Path({str(artifact)!r}), Path({str(tmp_path / "dest")!r}), [], unverified=True)
print(v.manifest["name"], sorted({{m.split(".")[0] for m in sys.modules}} & {{"cryptography", "edgepack"}}))
"""
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["digits", "[]"]
    assert (tmp_path / "dest" / "handler.py").read_bytes() == HANDLER
