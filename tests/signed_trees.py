"""A minimal artifact tree signed the way a build signs it, for archive-writer tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgepack.runtime.manifest import MANIFEST_FILE
from edgepack.signing.attestation import Provenance, attest_tree
from edgepack.signing.keys import Ed25519FileSigner, generate_keypair


def sign_tree(
    root: Path, keys_dir: Path, *, target: str, kind: str, model: tuple[str, str], epoch: int
) -> tuple[Path, dict[str, Any]]:
    """Write a manifest naming ``model`` (file, format) into ``root`` and attest the tree;
    return the public key file and the manifest."""
    manifest: dict[str, Any] = {
        "schema": "edgepack.manifest/v1",
        "name": "digits",
        "version": "1.0.0",
        "target": {"name": target, "kind": kind},
        "model": {"file": model[0], "format": model[1]},
    }
    (root / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    key, pub = generate_keypair(keys_dir / "dev")
    provenance = Provenance(
        project="digits",
        version="1.0.0",
        target=target,
        model_name="digits.keras",
        model_sha256="a" * 64,
        config_sha256="b" * 64,
        data_sha256={},
        packages=[],
        edgepack_version="0.1.0",
        epoch=epoch,
        tool_versions={},
    )
    attest_tree(root, Ed25519FileSigner.from_file(key), provenance)
    return pub, manifest
