"""Key files: generation, loading, key ids, and the errors a user sees for a wrong key."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from edgepack.config import SigningSpec
from edgepack.errors import BadSignatureError, ConfigError
from edgepack.signing.keys import (
    Ed25519FileSigner,
    PublicKey,
    Signer,
    generate_keypair,
    load_public_key_pem,
    load_public_keys,
    load_signer,
)


def _pem_private(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_public(key: object) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_generate_keypair_writes_private_0600_and_public_pem(tmp_path: Path) -> None:
    key, pub = generate_keypair(tmp_path / "keys" / "dev")
    assert (key.name, pub.name) == ("dev.key", "dev.pub")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pub.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)


def test_generate_keypair_refuses_to_overwrite(tmp_path: Path) -> None:
    key, _ = generate_keypair(tmp_path / "dev")
    before = key.read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        generate_keypair(tmp_path / "dev")
    assert key.read_bytes() == before
    # A leftover public key alone is refused too: it would no longer match the new private key.
    key.unlink()
    with pytest.raises(ConfigError, match="dev.pub"):
        generate_keypair(tmp_path / "dev")
    assert not key.exists()


def test_keyid_is_sha256_of_der_public_key(keypair: tuple[Path, Path], signer: Ed25519FileSigner) -> None:
    der = serialization.load_pem_public_key(keypair[1].read_bytes()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = hashlib.sha256(der).hexdigest()
    assert signer.keyid == expected
    assert load_public_keys([keypair[1]])[0].keyid == expected
    assert load_public_key_pem(signer.public_key_pem()).keyid == expected
    assert isinstance(signer, Signer)
    assert signer.algorithm == "ed25519"


def test_signature_round_trip_and_rejection(signer: Ed25519FileSigner, attacker: Ed25519FileSigner) -> None:
    key = load_public_key_pem(signer.public_key_pem())
    key.verify(signer.sign(b"data"), b"data")
    with pytest.raises(BadSignatureError):
        key.verify(signer.sign(b"data"), b"datA")
    with pytest.raises(BadSignatureError):
        key.verify(attacker.sign(b"data"), b"data")
    with pytest.raises(BadSignatureError):
        key.verify(b"short", b"data")


def test_load_signer_resolves_key_relative_to_project_root(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "keys" / "dev")
    signer = load_signer(SigningSpec(key="keys/dev.key"), tmp_path)
    assert isinstance(signer, Ed25519FileSigner)
    absolute = load_signer(SigningSpec(key=str(tmp_path / "keys" / "dev.key")), Path("/nonexistent"))
    assert absolute.keyid == signer.keyid


def test_missing_key_names_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_signer(SigningSpec(key="keys/nope.key"), tmp_path)
    hint = info.value.hint()
    assert "signing.key" in hint and str(tmp_path / "keys" / "nope.key") in hint
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"not a key at all\n", id="garbage"),
        pytest.param(_pem_private(rsa.generate_private_key(65537, 2048)), id="rsa-private"),
        pytest.param(_pem_private(ec.generate_private_key(ec.SECP256R1())), id="ec-private"),
        pytest.param(_pem_public(ed25519.Ed25519PrivateKey.generate()), id="public-key-as-private"),
        pytest.param(
            ed25519.Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"pw"),
            ),
            id="encrypted",
        ),
    ],
)
def test_wrong_key_file_is_a_config_error_naming_file_and_field(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad.key").write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_signer(SigningSpec(key="bad.key"), tmp_path)
    assert "signing.key" in info.value.hint() and "bad.key" in info.value.hint()


def test_unreadable_key_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "dir.key").mkdir()
    with pytest.raises(ConfigError, match="dir.key"):
        load_signer(SigningSpec(key="dir.key"), tmp_path)


def test_load_public_keys_accepts_ed25519_and_p256(tmp_path: Path) -> None:
    ed = tmp_path / "ed.pub"
    ed.write_bytes(_pem_public(ed25519.Ed25519PrivateKey.generate()))
    p256 = tmp_path / "p256.pub"
    p256.write_bytes(_pem_public(ec.generate_private_key(ec.SECP256R1())))
    keys = load_public_keys([ed, p256])
    assert [k.algorithm for k in keys] == ["ed25519", "ecdsa-p256-sha256"]
    assert all(isinstance(k, PublicKey) and len(k.keyid) == 64 for k in keys)


@pytest.mark.parametrize(
    "content, message",
    [
        (_pem_public(ec.generate_private_key(ec.SECP384R1())), "secp384r1"),
        (_pem_public(rsa.generate_private_key(65537, 2048)), "unsupported key type"),
        (_pem_private(ed25519.Ed25519PrivateKey.generate()), "private key"),
        (b"garbage", "not a PEM public key"),
    ],
    ids=["p384", "rsa", "private", "garbage"],
)
def test_load_public_keys_refuses_other_keys(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "k.pub"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_public_keys([path])
    assert str(path) in info.value.hint()


def test_load_public_keys_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.pub"):
        load_public_keys([tmp_path / "nope.pub"])
