"""What a data spec's content is, from its files alone: no numpy, no model, no generator run.

A build's cache keys use these digests, so an unchanged target is answered before
anything heavy is imported. A ``path`` spec is its file's sha256 (the same digest the loaded
dataset carries). A ``generator`` spec is the source of the project module or package that
holds the generator: a generator is taken to be a function of its code (and of the config,
which every key holds as well).
"""

from __future__ import annotations

from pathlib import Path

from .cache import sha256_file, sha256_tree
from .config import DataSpec


def spec_digest(spec: DataSpec, root: Path) -> str | None:
    """The digest of what ``spec`` names, or None when only loading it can tell (missing file,
    a generator imported from outside the project)."""
    if spec.path is not None:
        path = Path(spec.path)
        path = path if path.is_absolute() else Path(root) / path
        return sha256_file(path) if path.is_file() else None
    assert spec.generator is not None  # DataSpec holds exactly one of path and generator
    top = spec.generator.partition(":")[0].split(".")[0]
    for candidate in (Path(root) / f"{top}.py", Path(root) / top):
        if candidate.is_file() or (candidate / "__init__.py").is_file():
            return f"generator-source:{sha256_tree(candidate)}"
    return None
