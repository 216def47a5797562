"""Verification refuses every tampering, on a directory, a zip and a tar bundle alike,
with the exception of the check that refused, and changes nothing on disk."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
from signing_helpers import FILES, MANIFEST, materialize, read_statement, resign, tar_bytes

from edgepack.errors import (
    EXIT_REFUSED,
    BadSignatureError,
    DigestMismatchError,
    DuplicateSubjectError,
    FormatError,
    MalformedAttestationError,
    MissingFileError,
    RollbackError,
    UnlistedFileError,
    UnsafePathError,
    VerificationError,
)
from edgepack.packaging.archive import write_zip
from edgepack.runtime.manifest import ATTESTATION_FILE, MANIFEST_FILE
from edgepack.signing.keys import Ed25519FileSigner, PublicKey
from edgepack.signing.verify import Expectation, VerifiedArtifact, verify_artifact, verify_statement_bytes

FORMS = ["dir", "zip", "tar"]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _refused(
    path: Path, keys: list[PublicKey], error: type[VerificationError], **kwargs: Any
) -> VerificationError:
    """Verify expecting exactly ``error``, a one-line hint naming the artifact, and nothing changed."""
    before = _snapshot(path.parent)
    with pytest.raises(VerificationError) as info:
        verify_artifact(path, keys, **kwargs)
    assert type(info.value) is error, info.value.hint()
    assert info.value.exit_code == EXIT_REFUSED
    hint = info.value.hint()
    assert "\n" not in hint and str(path) in hint
    assert _snapshot(path.parent) == before
    return info.value


@pytest.mark.parametrize("form", FORMS)
def test_untampered_artifact_verifies(
    tree: Path, trusted: list[PublicKey], signer: Ed25519FileSigner, form: str
) -> None:
    artifact = materialize(tree, form)
    before = sorted(p.name for p in tree.parent.iterdir())
    verified = verify_artifact(artifact, trusted)
    assert isinstance(verified, VerifiedArtifact)
    assert verified.manifest == MANIFEST
    assert verified.keyid == signer.keyid
    assert set(verified.subjects) == set(FILES)
    assert sorted(p.name for p in tree.parent.iterdir()) == before  # nothing extracted
    assert (
        verify_artifact(artifact, trusted, expect=Expectation(min_version="1.0")).manifest["version"]
        == "1.0.0"
    )


# -- tampering with files ----------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    "name",
    [
        MANIFEST_FILE,
        "handler.py",
        "model/model.tflite",
        "numpy/_core/_umath.cpython-312-x86_64-linux-gnu.so",
        "data/caf\u00e9 labels.txt",
    ],
)
def test_flipped_byte(tree: Path, trusted: list[PublicKey], form: str, name: str) -> None:
    path = tree / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    error = _refused(materialize(tree, form), trusted, DigestMismatchError)
    assert name in error.hint()


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    "name", ["extra.py", "model/backdoor.bin", "numpy-2.4.6.dist-info/INSTALLER", "sitecustomize.py"]
)
def test_added_file(tree: Path, trusted: list[PublicKey], form: str, name: str) -> None:
    (tree / name).write_bytes(b"import os\n")
    error = _refused(materialize(tree, form), trusted, UnlistedFileError)
    assert name in error.hint()


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", [MANIFEST_FILE, "model/model.tflite", "handler.py"])
def test_removed_file(tree: Path, trusted: list[PublicKey], form: str, name: str) -> None:
    (tree / name).unlink()
    error = _refused(materialize(tree, form), trusted, MissingFileError)
    assert name in error.hint()


@pytest.mark.parametrize("form", FORMS)
def test_removed_attestation(tree: Path, trusted: list[PublicKey], form: str) -> None:
    (tree / ATTESTATION_FILE).unlink()
    error = _refused(materialize(tree, form), trusted, MissingFileError)
    assert ATTESTATION_FILE in error.hint()


# -- tampering with the signature -------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_signature_by_another_key(
    tree: Path, trusted: list[PublicKey], attacker: Ed25519FileSigner, form: str
) -> None:
    (tree / "extra.py").write_bytes(b"evil\n")
    resign(
        tree, attacker, lambda s: s["subject"].append({"name": "extra.py", "digest": {"sha256": "0" * 64}})
    )
    _refused(materialize(tree, form), trusted, BadSignatureError)


@pytest.mark.parametrize("form", FORMS)
def test_signature_by_another_key_claiming_the_trusted_keyid(
    tree: Path, trusted: list[PublicKey], attacker: Ed25519FileSigner, signer: Ed25519FileSigner, form: str
) -> None:
    resign(tree, attacker, keyid=signer.keyid)
    error = _refused(materialize(tree, form), trusted, BadSignatureError)
    assert "does not verify" in error.hint()


@pytest.mark.parametrize("form", FORMS)
def test_signature_with_unknown_keyid(
    tree: Path, trusted: list[PublicKey], signer: Ed25519FileSigner, form: str
) -> None:
    resign(tree, signer, keyid="f" * 64)  # a genuine signature, but labelled with a key nobody trusts
    error = _refused(materialize(tree, form), trusted, BadSignatureError)
    assert "no signature by a trusted key" in error.hint()


@pytest.mark.parametrize("form", FORMS)
def test_untrusted_verifier_keys(tree: Path, attacker: Ed25519FileSigner, form: str) -> None:
    from edgepack.signing.keys import load_public_key_pem

    _refused(materialize(tree, form), [load_public_key_pem(attacker.public_key_pem())], BadSignatureError)
    _refused(materialize(tree, form), [], BadSignatureError)


# -- validly signed, hostile statements -------------------------------------------------


def _dup(s: dict[str, Any]) -> None:
    s["subject"].append(dict(s["subject"][0]))


def _rename(new: str) -> Callable[[dict[str, Any]], None]:
    def mutate(s: dict[str, Any]) -> None:
        s["subject"][1]["name"] = new

    return mutate


def _drop_manifest(s: dict[str, Any]) -> None:
    s["subject"] = [x for x in s["subject"] if x["name"] != MANIFEST_FILE]


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(s: dict[str, Any]) -> None:
        s[key] = value

    return mutate


def _bad_digest(s: dict[str, Any]) -> None:
    s["subject"][0]["digest"] = {"sha512": "0" * 128}


def _list_attestation(s: dict[str, Any]) -> None:
    s["subject"].append({"name": ATTESTATION_FILE, "digest": {"sha256": "0" * 64}})


HOSTILE = [
    pytest.param(_dup, DuplicateSubjectError, id="subject-twice"),
    pytest.param(_rename("../../etc/cron.d/evil"), UnsafePathError, id="dotdot"),
    pytest.param(_rename("/etc/passwd"), UnsafePathError, id="absolute"),
    pytest.param(_rename("model\\model.tflite"), UnsafePathError, id="backslash"),
    pytest.param(_rename(""), UnsafePathError, id="empty"),
    pytest.param(_rename("model/./model.tflite"), UnsafePathError, id="dot-component"),
    pytest.param(_rename("C:/evil"), UnsafePathError, id="drive"),
    pytest.param(_drop_manifest, MalformedAttestationError, id="no-manifest"),
    pytest.param(
        _set("_type", "https://in-toto.io/Statement/v0.1"), MalformedAttestationError, id="old-statement"
    ),
    pytest.param(
        _set("predicateType", "https://example.com/x"), MalformedAttestationError, id="predicate-type"
    ),
    pytest.param(_set("subject", []), MalformedAttestationError, id="no-subjects"),
    pytest.param(_bad_digest, MalformedAttestationError, id="no-sha256"),
    pytest.param(_list_attestation, MalformedAttestationError, id="self-listed"),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("mutate, error", HOSTILE)
def test_hostile_statement(
    tree: Path,
    trusted: list[PublicKey],
    signer: Ed25519FileSigner,
    form: str,
    mutate: Callable[[dict[str, Any]], None],
    error: type[VerificationError],
) -> None:
    resign(tree, signer, mutate)
    _refused(materialize(tree, form), trusted, error)


@pytest.mark.parametrize("form", FORMS)
def test_wrong_payload_type(
    tree: Path, trusted: list[PublicKey], signer: Ed25519FileSigner, form: str
) -> None:
    resign(tree, signer, payload_type="application/json")
    _refused(materialize(tree, form), trusted, MalformedAttestationError)


@pytest.mark.parametrize("form", FORMS)
def test_garbage_attestation(tree: Path, trusted: list[PublicKey], form: str) -> None:
    (tree / ATTESTATION_FILE).write_bytes(b"{not json")
    _refused(materialize(tree, form), trusted, MalformedAttestationError)


def test_statement_with_a_repeated_key_is_refused(
    tree: Path, trusted: list[PublicKey], signer: Ed25519FileSigner
) -> None:
    """A second "subject" key would be read differently by parsers that keep the first copy."""
    from edgepack.signing.attestation import PAYLOAD_TYPE, write_envelope
    from edgepack.signing.dsse import sign_envelope

    statement = json.dumps(read_statement(tree), sort_keys=True)
    forged = statement[:-1] + ', "subject": []}'
    write_envelope(tree, sign_envelope(forged.encode(), PAYLOAD_TYPE, signer))
    error = _refused(tree, trusted, MalformedAttestationError)
    assert "duplicate key 'subject'" in error.hint()


@pytest.mark.parametrize("form", FORMS)
def test_rollback_refused(tree: Path, trusted: list[PublicKey], form: str) -> None:
    error = _refused(materialize(tree, form), trusted, RollbackError, expect=Expectation(min_version="1.0.1"))
    assert "1.0.0" in error.hint()


def test_manifest_must_be_an_edgepack_manifest(
    tree: Path, trusted: list[PublicKey], signer: Ed25519FileSigner
) -> None:
    from edgepack.cache import sha256_file

    (tree / MANIFEST_FILE).write_text(json.dumps({"schema": "other", "version": "1"}))
    digest = sha256_file(tree / MANIFEST_FILE)

    def fix(s: dict[str, Any]) -> None:
        for x in s["subject"]:
            if x["name"] == MANIFEST_FILE:
                x["digest"]["sha256"] = digest

    resign(tree, signer, fix)
    _refused(tree, trusted, MalformedAttestationError)


# -- container-specific attacks ---------------------------------------------------------


def test_symlink_in_directory(tree: Path, trusted: list[PublicKey]) -> None:
    # Same content through a link is still refused: a link can point anywhere later.
    real = tree.parent / "outside.py"
    real.write_bytes(FILES["handler.py"])
    (tree / "handler.py").unlink()
    (tree / "handler.py").symlink_to(real)
    _refused(tree, trusted, UnsafePathError)


def test_symlinked_directory(tree: Path, trusted: list[PublicKey]) -> None:
    (tree / "linked").symlink_to(tree.parent)
    _refused(tree, trusted, UnsafePathError)


def test_fifo_in_directory(tree: Path, trusted: list[PublicKey]) -> None:
    os.mkfifo(tree / "pipe")
    _refused(tree, trusted, UnsafePathError)


def _zip_with(tree: Path, dest: Path, extra: list[tuple[zipfile.ZipInfo, bytes]]) -> Path:
    """A copy of the signed zip with hostile entries appended."""
    good = materialize(tree, "zip")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(dest, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        for info, data in extra:
            out.writestr(info, data)
    return dest


def _info(name: str, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = mode << 16
    return info


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param((_info("../evil.py"), b"x"), id="dotdot"),
        pytest.param((_info("/etc/evil"), b"x"), id="absolute"),
        pytest.param((_info("evil\\..\\..\\x"), b"x"), id="backslash"),
        pytest.param((_info("link", stat.S_IFLNK | 0o777), b"/etc/passwd"), id="symlink"),
        pytest.param((_info("handler.py"), b"print('pwned')\n"), id="duplicate"),
        pytest.param((_info(MANIFEST_FILE), b"{}"), id="duplicate-manifest"),
        pytest.param((_info("model/model.tflite/x"), b"x"), id="file-and-dir"),
    ],
)
def test_hostile_zip_entries(
    tree: Path, trusted: list[PublicKey], entry: tuple[zipfile.ZipInfo, bytes]
) -> None:
    with pytest.warns(UserWarning, match="Duplicate") if entry[0].filename in FILES else nullcontext():
        artifact = _zip_with(tree, tree.parent / "hostile.zip", [entry])
    _refused(artifact, trusted, UnsafePathError)


def test_corrupt_zip_member(tree: Path, trusted: list[PublicKey]) -> None:
    """Bytes flipped inside the compressed data, without repackaging: the member cannot match."""
    artifact = materialize(tree, "zip")
    with zipfile.ZipFile(artifact) as zf:
        info = zf.getinfo("model/model.tflite")
    raw = bytearray(artifact.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + info.compress_size // 2] ^= 0xFF
    artifact.write_bytes(bytes(raw))
    _refused(artifact, trusted, FormatError)


def test_not_an_archive(tmp_path: Path, trusted: list[PublicKey]) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 not really")
    _refused(junk, trusted, FormatError)
    with pytest.raises(MissingFileError):
        verify_artifact(tmp_path / "absent.zip", trusted)


@pytest.mark.parametrize(
    "kind, name",
    [
        (tarfile.SYMTYPE, "link"),
        (tarfile.LNKTYPE, "hard"),
        (tarfile.REGTYPE, "../evil"),
        (tarfile.FIFOTYPE, "p"),
    ],
    ids=["symlink", "hardlink", "dotdot", "fifo"],
)
def test_hostile_tar_members(tree: Path, trusted: list[PublicKey], kind: bytes, name: str) -> None:
    good = materialize(tree, "tar")
    with tarfile.open(good) as tf:
        members = [m for m in tf.getmembers()]
        data = {m.name: tf.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    hostile = tarfile.TarInfo(name)
    hostile.type = kind
    hostile.linkname = "/etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    if kind == tarfile.REGTYPE:
        hostile.size = 1
        data[name] = b"x"
    artifact = tree.parent / "hostile.tar.gz"
    artifact.write_bytes(gzip.compress(tar_bytes([*members, hostile], data)))
    _refused(artifact, trusted, UnsafePathError)


def test_duplicate_tar_member(tree: Path, trusted: list[PublicKey]) -> None:
    good = materialize(tree, "tar")
    with tarfile.open(good) as tf:
        members = tf.getmembers()
        data = {m.name: tf.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    again = tarfile.TarInfo("handler.py")
    again.size = len(data["handler.py"])
    artifact = tree.parent / "dup.tar.gz"
    artifact.write_bytes(gzip.compress(tar_bytes([*members, again], data)))
    _refused(artifact, trusted, UnsafePathError)


# -- the pure core ------------------------------------------------------------------------


def test_pure_core_takes_bytes_or_digests(tree: Path, trusted: list[PublicKey]) -> None:
    envelope = (tree / ATTESTATION_FILE).read_bytes()
    files: dict[str, bytes | str] = dict(FILES)
    digests = {x["name"]: x["digest"]["sha256"] for x in read_statement(tree)["subject"]}
    files["model/model.tflite"] = digests["model/model.tflite"]
    assert verify_statement_bytes(envelope, files, trusted).manifest == MANIFEST
    files["handler.py"] = b"changed"
    with pytest.raises(DigestMismatchError, match="handler.py"):
        verify_statement_bytes(envelope, files, trusted)
    with pytest.raises(UnsafePathError):
        verify_statement_bytes(envelope, {**FILES, "../x": b""}, trusted)


def test_zip_written_from_verified_tree_verifies_after_any_mtime(
    tree: Path, trusted: list[PublicKey]
) -> None:
    os.utime(tree / "handler.py", (0, 0))
    dest = tree.parent / "again.zip"
    write_zip(tree, dest, epoch=1700000000)
    assert verify_artifact(dest, trusted).manifest == MANIFEST
    assert io.BytesIO(dest.read_bytes()).read(2) == b"PK"
