"""Content-addressed build cache.

Keys are full sha256 digests over canonical JSON of everything that decides a
result (model bytes digest, pass config, tool versions, data digests). Entries are
directories written atomically: built beside the final place, then renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

# One file digest for build and runtime: the runtime ships alone, so it holds the code.
from .runtime.hashing import sha256_file

CACHE_ENV = "EDGEPACK_CACHE_DIR"


def sha256_tree(path: Path) -> str:
    """Digest of a file, or of a directory's relative paths and file contents.

    Bytecode caches are derived data that appear on first import: never part of a digest."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    files = (q for q in path.rglob("*") if q.is_file() and "__pycache__" not in q.relative_to(path).parts)
    for p in sorted(files):
        digest.update(p.relative_to(path).as_posix().encode() + b"\0")
        digest.update(sha256_file(p).encode() + b"\0")
    return digest.hexdigest()


def _special_files(directory: str, names: list[str]) -> set[str]:
    """Device nodes, fifos and sockets are never cached: copying /dev/zero never ends."""
    skipped = set()
    for name in names:
        mode = os.lstat(os.path.join(directory, name)).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            skipped.add(name)
    return skipped


class BuildCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def default(cls) -> BuildCache:
        env = os.environ.get(CACHE_ENV)
        root = Path(env) if env else Path.home() / ".cache" / "edgepack"
        return cls(root)

    @staticmethod
    def key(**parts: Any) -> str:
        """sha256 over the canonical JSON of ``parts`` (sorted keys, no whitespace)."""
        blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _entry(self, namespace: str, key: str) -> Path:
        return self.root / namespace / key

    def get_dir(self, namespace: str, key: str) -> Path | None:
        entry = self._entry(namespace, key)
        return entry if entry.is_dir() else None

    def put_dir(self, namespace: str, key: str, src: Path) -> Path:
        """Copy ``src`` into the cache under ``key``; concurrent writers of one key are safe."""
        entry = self._entry(namespace, key)
        if entry.is_dir():
            return entry
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:16]}-", dir=entry.parent))
        try:
            shutil.copytree(src, staging, dirs_exist_ok=True, symlinks=True, ignore=_special_files)
            try:
                os.rename(staging, entry)
            except OSError:
                if not entry.is_dir():  # lost a race to another writer: theirs is as good as ours
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return entry
