"""The one file-hashing helper, for the runtime and the build side alike."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in ``chunk``-byte blocks (models and bundles are large)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256", _bufsize=chunk).hexdigest()
