"""Trusted public keys (Ed25519, ECDSA P-256 with SHA-256) and signature checks.

``cryptography`` is imported inside the functions that need it, so a device that only
runs a model never loads it. A key's id is the sha256 (hex) of its DER
SubjectPublicKeyInfo, computed the same way by signer and verifier.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..failures import EXIT_BAD_INPUT, EdgepackError
from .errors import BadSignatureError

Algorithm = Literal["ed25519", "ecdsa-p256-sha256"]

# A PEM public key is a few hundred bytes; refuse to read more.
MAX_KEY_FILE_BYTES = 64 << 10


class KeyFileError(EdgepackError):
    """A trusted-key file is missing, unreadable or not a supported public key."""

    exit_code = EXIT_BAD_INPUT


def keyid_of(public_key: Any) -> str:
    """sha256 hex of the key's DER SubjectPublicKeyInfo."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class PublicKey:
    """A trusted public key: Ed25519 or ECDSA P-256 with SHA-256."""

    keyid: str
    algorithm: Algorithm
    key: Any  # cryptography's Ed25519PublicKey or EllipticCurvePublicKey

    @classmethod
    def from_crypto(
        cls, key: Any, where: str = "public key", error: type[EdgepackError] = KeyFileError
    ) -> PublicKey:
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519

        if isinstance(key, ed25519.Ed25519PublicKey):
            return cls(keyid_of(key), "ed25519", key)
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            return cls(keyid_of(key), "ecdsa-p256-sha256", key)
        kind = getattr(getattr(key, "curve", None), "name", None) or type(key).__name__
        raise error(f"unsupported key type {kind}: expected Ed25519 or EC P-256", where=where)

    def verify(self, signature: bytes, data: bytes) -> None:
        """Return if ``signature`` is this key's over ``data``; raise ``BadSignatureError`` otherwise."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            if self.algorithm == "ed25519":
                self.key.verify(signature, data)
            else:
                self.key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError) as e:
            raise BadSignatureError(f"signature does not verify with key {self.keyid}") from e

    def pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return bytes(
            self.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )


def load_public_key_pem(
    data: bytes, where: str = "public key", error: type[EdgepackError] = KeyFileError
) -> PublicKey:
    """Parse a PEM SubjectPublicKeyInfo (Ed25519 or EC P-256); anything else raises ``error``."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    if b"PRIVATE KEY" in data:
        raise error("this is a private key; give verifiers the public key (.pub)", where=where)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise error("not a PEM public key", where=where) from e
    return PublicKey.from_crypto(key, where=where, error=error)


def load_public_keys(
    paths: Iterable[Path | str], error: type[EdgepackError] = KeyFileError
) -> list[PublicKey]:
    """Read trusted public keys from PEM files; errors name the file."""
    keys = []
    for p in paths:
        path = Path(p)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_KEY_FILE_BYTES + 1)
        except OSError as e:
            raise error(f"cannot read public key file: {e.strerror or e}", where=str(path)) from e
        if len(data) > MAX_KEY_FILE_BYTES:
            raise error(f"larger than {MAX_KEY_FILE_BYTES} bytes: not a public key", where=str(path))
        keys.append(load_public_key_pem(data, where=str(path), error=error))
    return keys
