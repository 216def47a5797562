"""Open an artifact for running it: verify, unpack, and verify what was unpacked.

Checking the archive and then unpacking it would leave a gap (the file can change in
between, or an extractor can read it differently from the verifier). Here the unpacked
tree is verified again against the signed statement, so what runs is exactly what was
signed. Without trusted keys the artifact is unpacked with the same safety rules, and
the caller must say loudly that it runs unverified code.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import VerificationError
from ..packaging.extract import extract_artifact
from ..runtime.manifest import MANIFEST_FILE
from .keys import PublicKey
from .verify import verify_artifact, verify_tree


def open_artifact(artifact: Path, dest: Path, keys: Sequence[PublicKey]) -> dict[str, Any]:
    """Unpack ``artifact`` into the fresh directory ``dest`` and return its manifest.

    With ``keys``, the artifact is verified before anything is written and the unpacked
    tree after; a refusal raises the ``VerificationError`` naming the check and leaves
    ``dest`` absent.
    """
    if keys:
        verify_artifact(artifact, keys)
    extract_artifact(artifact, dest)
    if keys:
        try:
            return dict(verify_tree(dest, keys).manifest)
        except VerificationError:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    try:
        manifest = json.loads((dest / MANIFEST_FILE).read_bytes())
    except (OSError, ValueError) as e:
        raise VerificationError(f"{MANIFEST_FILE}: unreadable ({e})", where=str(artifact)) from e
    if not isinstance(manifest, dict):
        raise VerificationError(f"{MANIFEST_FILE}: not a JSON object", where=str(artifact))
    return manifest
