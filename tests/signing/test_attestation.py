"""The attestation: statement shape, determinism, and independent checks by other implementations
(securesystemslib's DSSE, in-toto-attestation's protobuf bindings)."""

from __future__ import annotations

import base64
import copy
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey
from signing_helpers import FILES, make_tree, read_statement, sample_provenance

from edgepack.cache import sha256_file
from edgepack.errors import PackagingError
from edgepack.runtime.manifest import ATTESTATION_FILE, MANIFEST_FILE
from edgepack.signing.attestation import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    Provenance,
    attest_tree,
    build_statement,
)
from edgepack.signing.dsse import pae, verify_envelope
from edgepack.signing.keys import Ed25519FileSigner, PublicKey


def test_statement_lists_every_file_sorted_with_its_digest(tree: Path) -> None:
    statement = read_statement(tree)
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == PREDICATE_TYPE
    names = [s["name"] for s in statement["subject"]]
    assert names == sorted(FILES)
    assert ATTESTATION_FILE not in names
    for subject in statement["subject"]:
        assert subject["digest"] == {"sha256": sha256_file(tree / subject["name"])}


def test_predicate_records_inputs_builder_and_times(tree: Path) -> None:
    predicate = read_statement(tree)["predicate"]
    definition = predicate["buildDefinition"]
    assert definition["externalParameters"]["project"] == {"name": "digits", "version": "1.0.0"}
    assert definition["externalParameters"]["target"] == "lambda-x86_64"
    deps = {d["annotations"]["role"]: d for d in definition["resolvedDependencies"][:2]}
    assert deps["model"] == {
        "name": "digits.keras",
        "digest": {"sha256": "a" * 64},
        "annotations": {"role": "model"},
    }
    assert deps["config"]["digest"] == {"sha256": "b" * 64}
    data = [d for d in definition["resolvedDependencies"] if d["annotations"]["role"] == "data"]
    assert [(d["name"], d["digest"]["sha256"]) for d in data] == [
        ("calibration", "c" * 64),
        ("validation", "d" * 64),
    ]
    (pkg,) = [d for d in definition["resolvedDependencies"] if d["annotations"]["role"] == "runtime-package"]
    assert pkg["uri"] == "pkg:pypi/numpy@2.4.6" and pkg["digest"] == {"sha256": "e" * 64}
    builder = predicate["runDetails"]["builder"]
    assert builder["id"].endswith("@v0.1.0") and builder["version"] == {"edgepack": "0.1.0"}
    assert predicate["runDetails"]["metadata"] == {
        "startedOn": "2023-11-14T22:13:20Z",
        "finishedOn": "2023-11-14T22:13:20Z",
    }


def test_times_default_to_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    fields = {k: v for k, v in vars(sample_provenance()).items() if k != "epoch"}
    prov = Provenance(**fields)
    assert prov.epoch == 86400
    assert prov.predicate()["runDetails"]["metadata"]["startedOn"] == "1970-01-02T00:00:00Z"


def test_attestation_is_deterministic_json(tmp_path: Path, signer: Ed25519FileSigner) -> None:
    outputs = []
    for name in ("a", "b"):
        root = make_tree(tmp_path / name)
        os.utime(root / "handler.py", (1, 1))  # mtimes are not part of the statement
        outputs.append(attest_tree(root, signer, sample_provenance()).read_bytes())
    assert outputs[0] == outputs[1]  # Ed25519 signatures are deterministic too
    text = outputs[0].decode()
    assert text.endswith("}\n")
    envelope = json.loads(text)
    assert text == json.dumps(envelope, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert envelope["payloadType"] == PAYLOAD_TYPE


def test_attest_refuses_symlinks_and_trees_without_manifest(
    tmp_path: Path, signer: Ed25519FileSigner
) -> None:
    root = make_tree(tmp_path / "a")
    (root / "link.py").symlink_to(root / "handler.py")
    with pytest.raises(PackagingError, match="symlink"):
        attest_tree(root, signer, sample_provenance())
    assert not (root / ATTESTATION_FILE).exists()

    bare = make_tree(tmp_path / "b")
    (bare / MANIFEST_FILE).unlink()
    with pytest.raises(PackagingError, match=MANIFEST_FILE):
        attest_tree(bare, signer, sample_provenance())

    odd = make_tree(tmp_path / "c")
    (odd / "back\\slash.txt").write_bytes(b"x")
    with pytest.raises(PackagingError, match="backslash"):
        attest_tree(odd, signer, sample_provenance())


# -- independent implementations --------------------------------------------------------


def test_securesystemslib_verifies_our_envelope(tree: Path, signer: Ed25519FileSigner) -> None:
    data = json.loads((tree / ATTESTATION_FILE).read_text())
    envelope = Envelope.from_dict(copy.deepcopy(data))
    assert envelope.pae() == pae(data["payloadType"], base64.b64decode(data["payload"]))
    public = serialization.load_pem_public_key(signer.public_key_pem())
    key = SSlibKey.from_crypto(public, keyid=signer.keyid)
    assert set(envelope.verify([key], 1)) == {signer.keyid}


def test_we_verify_a_securesystemslib_envelope(signer: Ed25519FileSigner, trusted: list[PublicKey]) -> None:
    private = serialization.load_pem_private_key(signer.source.read_bytes(), None)  # type: ignore[union-attr]
    public = serialization.load_pem_public_key(signer.public_key_pem())
    theirs = CryptoSigner(private, SSlibKey.from_crypto(public, keyid=signer.keyid))
    envelope = Envelope(b'{"x": 1}', PAYLOAD_TYPE, {})
    envelope.sign(theirs)
    assert verify_envelope(envelope.to_dict(), trusted) == b'{"x": 1}'


def test_in_toto_bindings_validate_statement_and_slsa_predicate(tree: Path) -> None:
    statement = read_statement(tree)
    proto = json_format.ParseDict(statement, statement_pb2.Statement())
    Statement.copy_from_pb(proto).validate()
    for subject in proto.subject:
        ResourceDescriptor.copy_from_pb(subject).validate()
    provenance = json_format.ParseDict(statement["predicate"], provenance_pb2.Provenance())
    assert provenance.build_definition.build_type.startswith("https://")
    assert provenance.run_details.metadata.started_on.seconds == 1700000000
    assert len(provenance.build_definition.resolved_dependencies) == 5


def test_in_toto_bindings_catch_a_predicate_typo() -> None:
    """The schema check can fail: a misspelt SLSA field is rejected."""
    predicate = sample_provenance().predicate()
    predicate["buildDefiniton"] = predicate.pop("buildDefinition")
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict(predicate, provenance_pb2.Provenance())
    statement = build_statement({"a": "0" * 64}, sample_provenance())
    statement["subject"] = []
    with pytest.raises(ValueError, match="subject"):
        Statement.copy_from_pb(json_format.ParseDict(statement, statement_pb2.Statement())).validate()
