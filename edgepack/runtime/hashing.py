"""The one file-hashing helper, for the runtime and the build side alike."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in ``chunk``-byte blocks (models and bundles are large)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256", _bufsize=chunk).hexdigest()


def copy_file_sha256(src: Path, dest: Path, chunk: int = 1 << 20) -> str:
    """Copy ``src`` to ``dest`` and return the hex sha256 of the bytes written, in one read."""
    digest = hashlib.sha256()
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        while block := fin.read(chunk):
            digest.update(block)
            fout.write(block)
    return digest.hexdigest()
