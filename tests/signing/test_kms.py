"""KMS signing against a real moto server over HTTP, verified offline with the exported key.

moto signs ``MessageType=DIGEST`` wrongly (it hashes the digest again), so these tests
sign RAW with payloads under KMS's 4,096-byte RAW limit; the DIGEST arithmetic is
covered in test_dsse.py. moto's own ``Verify`` is never asked.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from signing_helpers import sample_provenance

from edgepack.config import SigningSpec
from edgepack.errors import BadSignatureError, ConfigError, DigestMismatchError, PackagingError
from edgepack.packaging.archive import write_zip
from edgepack.signing.attestation import attest_tree
from edgepack.signing.dsse import pae
from edgepack.signing.keys import KmsSigner, load_public_key_pem, load_public_keys, load_signer
from edgepack.signing.verify import verify_artifact
from tests.moto_fixtures import running_moto

boto3 = pytest.importorskip("boto3")


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_moto(tmp_path_factory.mktemp("moto")) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def kms(moto_endpoint: str) -> Any:
    return boto3.client(
        "kms",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def p256_key(kms: Any) -> str:
    return str(kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"])


def _small_tree(root: Path) -> Path:
    (root / "model").mkdir(parents=True)
    manifest = {
        "schema": "edgepack.manifest/v1",
        "name": "digits",
        "version": "1.0.0",
        "target": {"name": "lambda-x86_64"},
    }
    (root / "edgepack.json").write_text(json.dumps(manifest))
    (root / "handler.py").write_text("def handler(event, context):\n    return {}\n")
    (root / "model" / "model.tflite").write_bytes(b"TFL3" + bytes(range(256)))
    return root


def _small_provenance() -> Any:
    return sample_provenance(packages=[], data_sha256={}, tool_versions={})


def test_kms_signed_artifact_verifies_offline(tmp_path: Path, kms: Any, p256_key: str) -> None:
    signer = KmsSigner(p256_key, client=kms, message_type="RAW")
    assert signer.algorithm == "ecdsa-p256-sha256"
    exported = kms.get_public_key(KeyId=p256_key)["PublicKey"]
    assert signer.keyid == hashlib.sha256(exported).hexdigest()

    root = _small_tree(tmp_path / "artifact")
    attestation = attest_tree(root, signer, _small_provenance())
    envelope = json.loads(attestation.read_text())
    assert len(pae(envelope["payloadType"], base64.b64decode(envelope["payload"]))) < 4096

    # Offline: only the exported public key, written to a file as a verifier would get it.
    pub = tmp_path / "kms.pub"
    pub.write_bytes(signer.public_key_pem())
    keys = load_public_keys([pub])
    assert keys[0].algorithm == "ecdsa-p256-sha256"
    assert verify_artifact(root, keys).keyid == signer.keyid
    archive = tmp_path / "artifact.zip"
    write_zip(root, archive)
    assert verify_artifact(archive, keys).manifest["name"] == "digits"

    (root / "handler.py").write_text("import os; os.system('evil')\n")
    with pytest.raises(DigestMismatchError, match="handler.py"):
        verify_artifact(root, keys)


def test_another_p256_key_claiming_the_kms_keyid_is_refused(tmp_path: Path, kms: Any, p256_key: str) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from edgepack.signing.attestation import PAYLOAD_TYPE, canonical_json, write_envelope
    from edgepack.signing.dsse import sign_envelope

    genuine = KmsSigner(p256_key, client=kms, message_type="RAW")

    class Impostor:
        algorithm = "ecdsa-p256-sha256"
        keyid = genuine.keyid
        _key = ec.generate_private_key(ec.SECP256R1())

        def sign(self, data: bytes) -> bytes:
            return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

        def public_key_pem(self) -> bytes:
            return genuine.public_key_pem()

    root = _small_tree(tmp_path / "artifact")
    attest_tree(root, genuine, _small_provenance())
    statement = {"forged": True}
    write_envelope(root, sign_envelope(canonical_json(statement), PAYLOAD_TYPE, Impostor()))  # type: ignore[arg-type]
    with pytest.raises(BadSignatureError, match="does not verify"):
        verify_artifact(root, [load_public_key_pem(genuine.public_key_pem())])


def test_raw_over_kms_limit_is_refused_before_calling_kms(kms: Any, p256_key: str) -> None:
    signer = KmsSigner(p256_key, client=kms, message_type="RAW")
    with pytest.raises(PackagingError, match="4096-byte RAW limit"):
        signer.sign(b"x" * 4097)


def test_load_signer_builds_a_digest_kms_signer(tmp_path: Path, kms: Any, p256_key: str) -> None:
    signer = load_signer(SigningSpec(kms_key_id=p256_key), tmp_path, kms_client=kms)
    assert isinstance(signer, KmsSigner)
    assert signer.message_type == "DIGEST"  # what production needs for PAEs over 4 KB
    assert load_public_key_pem(signer.public_key_pem()).keyid == signer.keyid


@pytest.mark.parametrize(
    "spec, usage",
    [
        ("RSA_2048", "SIGN_VERIFY"),
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
        ("ECC_SECG_P256K1", "SIGN_VERIFY"),
    ],
)
def test_wrong_kms_key_type_is_a_config_error(kms: Any, spec: str, usage: str) -> None:
    key_id = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"]
    with pytest.raises(ConfigError) as info:
        KmsSigner(key_id, client=kms, message_type="RAW")
    assert "signing.kms_key_id" in info.value.hint() and key_id in info.value.hint()


def test_unknown_kms_key_is_a_config_error(kms: Any) -> None:
    with pytest.raises(ConfigError, match="cannot read KMS key"):
        KmsSigner("11111111-2222-3333-4444-555555555555", client=kms)
