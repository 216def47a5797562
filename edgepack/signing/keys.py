"""Signing keys: Ed25519 key files and AWS KMS ECDSA P-256 keys behind one interface.

A key's id is the sha256 (hex) of its public key in DER SubjectPublicKeyInfo form, so
signer and verifier compute it the same way from the public key alone.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ..errors import BackendMissingError, BadSignatureError, ConfigError, PackagingError
from ..runtime.trust.public_keys import Algorithm, PublicKey, keyid_of
from ..runtime.trust.public_keys import load_public_key_pem as _load_public_key_pem
from ..runtime.trust.public_keys import load_public_keys as _load_public_keys

if TYPE_CHECKING:
    from ..config import SigningSpec

KmsMessageType = Literal["DIGEST", "RAW"]

# Real KMS refuses a RAW message over 4,096 bytes (moto does not enforce it).
KMS_RAW_LIMIT = 4096
_KMS_KEY_SPEC = "ECC_NIST_P256"
_KMS_ALGORITHM = "ECDSA_SHA_256"


def _public_pem(public_key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@runtime_checkable
class Signer(Protocol):
    """Something that signs bytes with a key whose public half verifiers hold."""

    @property
    def keyid(self) -> str: ...

    @property
    def algorithm(self) -> Algorithm: ...

    def sign(self, data: bytes) -> bytes:
        """Signature over ``data`` (raw 64 bytes for Ed25519, DER for ECDSA)."""
        ...

    def public_key_pem(self) -> bytes: ...


# -- key files ------------------------------------------------------------------------


def generate_keypair(prefix: Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: ``<prefix>.key`` (PKCS8 PEM, mode 0600) and ``<prefix>.pub``.

    Refuses (``ConfigError``) to overwrite either file: replacing a signing key by accident
    orphans every artifact signed with it.
    """
    prefix = Path(prefix)
    key_path = prefix.with_name(prefix.name + ".key")
    pub_path = prefix.with_name(prefix.name + ".pub")
    for path in (key_path, pub_path):
        if path.exists() or path.is_symlink():
            raise ConfigError(f"{path} already exists; refusing to overwrite a key", where=str(path))
    private = ed25519.Ed25519PrivateKey.generate()
    key_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    _write_new(key_path, key_pem, 0o600)
    try:
        _write_new(pub_path, _public_pem(private.public_key()), 0o644)
    except BaseException:
        key_path.unlink(missing_ok=True)
        raise
    return key_path, pub_path


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: a file that appeared since the check above is never overwritten.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    except FileExistsError as e:
        raise ConfigError(f"{path} already exists; refusing to overwrite a key", where=str(path)) from e
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # the umask does not get a say in a private key's mode


class Ed25519FileSigner:
    """Signs with an Ed25519 private key read from a PEM file."""

    algorithm: Algorithm = "ed25519"

    def __init__(self, private_key: ed25519.Ed25519PrivateKey, source: Path | None = None) -> None:
        self._key = private_key
        self.source = source
        self.keyid = keyid_of(private_key.public_key())

    @classmethod
    def from_file(cls, path: Path, where: str = "signing.key") -> Ed25519FileSigner:
        """Load a PKCS8 PEM Ed25519 private key; any problem is a ``ConfigError`` naming the file."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError as e:
            raise ConfigError(f"signing key file not found: {path}", where=where) from e
        except OSError as e:
            raise ConfigError(f"cannot read signing key file {path}: {e.strerror or e}", where=where) from e
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError as e:  # encrypted
            raise ConfigError(f"{path}: encrypted private keys are not supported", where=where) from e
        except (ValueError, UnsupportedAlgorithm) as e:
            raise ConfigError(f"{path}: not a PEM private key", where=where) from e
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ConfigError(
                f"{path}: expected an Ed25519 private key, got {type(key).__name__}", where=where
            )
        return cls(key, path)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def public_key_pem(self) -> bytes:
        return _public_pem(self._key.public_key())


# -- AWS KMS ---------------------------------------------------------------------------


def _aws_error(e: Exception) -> str:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return f"{err.get('Code', 'error')}: {err.get('Message', '')}".strip()
    return str(e)


class KmsSigner:
    """Signs with an AWS KMS ``ECC_NIST_P256`` / ``SIGN_VERIFY`` key (ECDSA_SHA_256).

    ``message_type="DIGEST"`` (the default) sends the SHA-256 of the data, which is what
    production needs: KMS takes at most 4,096 bytes RAW and a DSSE PAE listing every file
    is larger. ``"RAW"`` sends the data and lets KMS hash it (moto signs DIGEST wrongly,
    so tests against moto use RAW). Either way the signature is ECDSA over SHA-256(data)
    and verifies offline with the exported public key; every signature is checked against
    that key before it is returned.
    """

    algorithm: Algorithm = "ecdsa-p256-sha256"

    def __init__(
        self,
        key_id: str,
        *,
        client: Any = None,
        message_type: KmsMessageType = "DIGEST",
        where: str = "signing.kms_key_id",
    ) -> None:
        if message_type not in ("DIGEST", "RAW"):
            raise ConfigError(f"KMS message type must be DIGEST or RAW, not {message_type!r}", where=where)
        self.key_id = key_id
        self.message_type: KmsMessageType = message_type
        self._client = client if client is not None else self._default_client()
        self._public = self._fetch_public_key(where)
        self.keyid = self._public.keyid

    @staticmethod
    def _default_client() -> Any:
        try:
            import boto3
        except ImportError as e:
            raise BackendMissingError("boto3", "aws") from e
        return boto3.client("kms")

    def _fetch_public_key(self, where: str) -> PublicKey:
        try:
            response = self._client.get_public_key(KeyId=self.key_id)
        except Exception as e:  # botocore's ClientError / BotoCoreError, imported lazily
            raise ConfigError(f"cannot read KMS key {self.key_id}: {_aws_error(e)}", where=where) from e
        spec = response.get("KeySpec") or response.get("CustomerMasterKeySpec")
        usage = response.get("KeyUsage")
        if spec != _KMS_KEY_SPEC or usage != "SIGN_VERIFY":
            raise ConfigError(
                f"KMS key {self.key_id} is {spec}/{usage}; edgepack signs with {_KMS_KEY_SPEC}/SIGN_VERIFY",
                where=where,
            )
        if _KMS_ALGORITHM not in response.get("SigningAlgorithms", [_KMS_ALGORITHM]):
            raise ConfigError(f"KMS key {self.key_id} does not offer {_KMS_ALGORITHM}", where=where)
        try:
            key = serialization.load_der_public_key(response["PublicKey"])
        except (KeyError, ValueError, UnsupportedAlgorithm) as e:
            raise ConfigError(f"KMS key {self.key_id}: unreadable public key", where=where) from e
        return PublicKey.from_crypto(key, where=where, error=ConfigError)

    def sign(self, data: bytes) -> bytes:
        if self.message_type == "RAW":
            if len(data) > KMS_RAW_LIMIT:
                raise PackagingError(
                    f"KMS key {self.key_id}: {len(data)} bytes is over KMS's {KMS_RAW_LIMIT}-byte RAW limit; "
                    "sign with message type DIGEST"
                )
            message = data
        else:
            message = hashlib.sha256(data).digest()
        try:
            response = self._client.sign(
                KeyId=self.key_id,
                Message=message,
                MessageType=self.message_type,
                SigningAlgorithm=_KMS_ALGORITHM,
            )
        except Exception as e:  # botocore's ClientError / BotoCoreError, imported lazily
            raise PackagingError(f"KMS key {self.key_id} could not sign: {_aws_error(e)}") from e
        signature = bytes(response["Signature"])
        try:
            self._public.verify(signature, data)
        except BadSignatureError as e:
            raise PackagingError(
                f"KMS key {self.key_id} returned a signature its own public key does not verify "
                f"(message type {self.message_type})"
            ) from e
        return signature

    def public_key_pem(self) -> bytes:
        return self._public.pem()


# -- loading ---------------------------------------------------------------------------


def load_signer(spec: SigningSpec, root: Path, *, kms_client: Any = None) -> Signer:
    """The signer ``edgepack.yaml``'s ``signing`` section names; ``key`` is relative to ``root``."""
    if spec.key is not None:
        path = Path(spec.key).expanduser()
        if not path.is_absolute():
            path = Path(root) / path
        return Ed25519FileSigner.from_file(path, where="signing.key")
    if spec.kms_key_id is not None:
        return KmsSigner(spec.kms_key_id, client=kms_client)
    raise ConfigError("give exactly one of key or kms_key_id", where="signing")


def load_public_key_pem(data: bytes, where: str = "public key") -> PublicKey:
    """Parse a PEM SubjectPublicKeyInfo (Ed25519 or EC P-256); problems are ``ConfigError``."""
    return _load_public_key_pem(data, where, error=ConfigError)


def load_public_keys(paths: Iterable[Path | str]) -> list[PublicKey]:
    """Read trusted public keys from PEM files; errors (``ConfigError``) name the file."""
    return _load_public_keys(paths, error=ConfigError)


__all__ = [
    "Algorithm",
    "Ed25519FileSigner",
    "KmsSigner",
    "PublicKey",
    "Signer",
    "generate_keypair",
    "keyid_of",
    "load_public_key_pem",
    "load_public_keys",
    "load_signer",
]
