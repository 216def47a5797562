"""Fixtures for signing tests: keys and a signed artifact tree."""

from __future__ import annotations

from pathlib import Path

import pytest
from signing_helpers import make_tree, sample_provenance

from edgepack.signing.attestation import Provenance, attest_tree
from edgepack.signing.keys import Ed25519FileSigner, PublicKey, generate_keypair, load_public_keys


@pytest.fixture(scope="session")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("keys") / "dev")


@pytest.fixture(scope="session")
def signer(keypair: tuple[Path, Path]) -> Ed25519FileSigner:
    return Ed25519FileSigner.from_file(keypair[0])


@pytest.fixture(scope="session")
def trusted(keypair: tuple[Path, Path]) -> list[PublicKey]:
    return load_public_keys([keypair[1]])


@pytest.fixture(scope="session")
def attacker(tmp_path_factory: pytest.TempPathFactory) -> Ed25519FileSigner:
    """A well-formed key nobody trusts."""
    key, _ = generate_keypair(tmp_path_factory.mktemp("attacker") / "evil")
    return Ed25519FileSigner.from_file(key)


@pytest.fixture
def provenance() -> Provenance:
    return sample_provenance()


@pytest.fixture
def tree(tmp_path: Path, signer: Ed25519FileSigner, provenance: Provenance) -> Path:
    """A signed artifact directory."""
    root = make_tree(tmp_path / "artifact")
    attest_tree(root, signer, provenance)
    return root
