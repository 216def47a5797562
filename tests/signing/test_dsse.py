"""DSSE envelopes: PAE, signing, and the payload handed back only after a trusted signature."""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from edgepack.errors import BadSignatureError, MalformedAttestationError
from edgepack.signing.dsse import open_envelope, pae, sign_envelope, verify_envelope
from edgepack.signing.keys import Algorithm, Ed25519FileSigner, PublicKey, keyid_of

PAYLOAD = b'{"hello": "world"}'
TYPE = "application/vnd.in-toto+json"


class LocalEcdsaSigner:
    """An ECDSA P-256 signer in process, signing as KMS does in DIGEST mode (a prehashed SHA-256)."""

    algorithm: Algorithm = "ecdsa-p256-sha256"

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.keyid = keyid_of(self._key.public_key())

    def sign(self, data: bytes) -> bytes:
        digest = hashlib.sha256(data).digest()
        return self._key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))

    def public_key_pem(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def test_pae_matches_the_spec_example() -> None:
    # From the DSSE protocol document.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    # Lengths are byte counts, not character counts.
    assert pae("t\u00e9", b"\xff") == b"DSSEv1 3 t\xc3\xa9 1 \xff"


def test_round_trip(signer: Ed25519FileSigner, trusted: list[PublicKey]) -> None:
    envelope = sign_envelope(PAYLOAD, TYPE, signer)
    assert set(envelope) == {"payload", "payloadType", "signatures"}
    assert base64.b64decode(envelope["payload"]) == PAYLOAD
    assert envelope["signatures"][0]["keyid"] == signer.keyid
    assert verify_envelope(envelope, trusted) == PAYLOAD
    opened = open_envelope(envelope, trusted)
    assert (opened.keyid, opened.payload_type) == (signer.keyid, TYPE)


def test_ecdsa_digest_signature_verifies_over_the_pae() -> None:
    """What KMS DIGEST mode relies on: ECDSA over a prehashed SHA-256 verifies as ECDSA-SHA256 of the data."""
    ecdsa = LocalEcdsaSigner()
    envelope = sign_envelope(PAYLOAD, TYPE, ecdsa)
    key = PublicKey.from_crypto(serialization.load_pem_public_key(ecdsa.public_key_pem()))
    assert key.algorithm == "ecdsa-p256-sha256"
    assert verify_envelope(envelope, [key]) == PAYLOAD


def test_any_trusted_signature_suffices(
    signer: Ed25519FileSigner, attacker: Ed25519FileSigner, trusted: list[PublicKey]
) -> None:
    envelope = sign_envelope(PAYLOAD, TYPE, attacker)
    envelope["signatures"] += sign_envelope(PAYLOAD, TYPE, signer)["signatures"]
    assert open_envelope(envelope, trusted).keyid == signer.keyid


def _tampered(envelope: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(envelope)
    out.update(changes)
    return out


def test_refusals(signer: Ed25519FileSigner, attacker: Ed25519FileSigner, trusted: list[PublicKey]) -> None:
    good = sign_envelope(PAYLOAD, TYPE, signer)
    other_payload = base64.b64encode(b'{"hello": "mallory"}').decode()
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        (_tampered(good, payload=other_payload), BadSignatureError, "does not verify"),
        (_tampered(good, payloadType="text/plain"), BadSignatureError, "does not verify"),
        (sign_envelope(PAYLOAD, TYPE, attacker), BadSignatureError, "no signature by a trusted key"),
        (
            _tampered(good, signatures=[{"keyid": signer.keyid, "sig": attacker_sig(attacker)}]),
            BadSignatureError,
            "does not verify",
        ),
        (
            _tampered(good, signatures=[{"keyid": "0" * 64, "sig": good["signatures"][0]["sig"]}]),
            BadSignatureError,
            "no signature by a trusted key",
        ),
        (_tampered(good, signatures=[]), BadSignatureError, "no signature"),
        (_tampered(good, payload="not base64!"), MalformedAttestationError, "base64"),
        (_tampered(good, signatures=[{"sig": "AAAA"}]), MalformedAttestationError, "keyid"),
        (_tampered(good, signatures="nope"), MalformedAttestationError, "not a list"),
        (_tampered(good, extra=1), MalformedAttestationError, "unexpected extra"),
        ({"payload": good["payload"], "payloadType": TYPE}, MalformedAttestationError, "missing signatures"),
    ]
    for envelope, error, message in cases:
        with pytest.raises(error, match=message):
            verify_envelope(envelope, trusted)
    with pytest.raises(MalformedAttestationError):
        verify_envelope([], trusted)  # type: ignore[arg-type]
    with pytest.raises(BadSignatureError, match="no trusted keys"):
        verify_envelope(good, [])


def attacker_sig(attacker: Ed25519FileSigner) -> str:
    return base64.b64encode(attacker.sign(pae(TYPE, PAYLOAD))).decode()
