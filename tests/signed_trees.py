"""A small artifact tree signed the way a build signs it, for tests that need a real signed
artifact without building a model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgepack.runtime.manifest import MANIFEST_FILE
from edgepack.signing.attestation import Provenance, attest_tree
from edgepack.signing.keys import Ed25519FileSigner, generate_keypair


def sign_tree(root: Path, keys_dir: Path, manifest: dict[str, Any], *, epoch: int) -> Path:
    """Write ``manifest`` into ``root``, attest the tree with a new key under ``keys_dir``
    and return the public key file."""
    (root / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    key, pub = generate_keypair(keys_dir / "dev")
    provenance = Provenance(
        project=manifest["name"],
        version=manifest["version"],
        target=manifest["target"]["name"],
        model_name="model",
        model_sha256="a" * 64,
        config_sha256="b" * 64,
        epoch=epoch,
    )
    attest_tree(root, Ed25519FileSigner.from_file(key), provenance)
    return pub


def manifest_for(target_name: str, kind: str, **more: Any) -> dict[str, Any]:
    """A minimal manifest for the target named; ``more`` adds top-level fields or replaces them
    (``target`` too, whole)."""
    return {
        "schema": "edgepack.manifest/v1",
        "name": "digits",
        "version": "1.0.0",
        "target": {"name": target_name, "kind": kind},
        **more,
    }
