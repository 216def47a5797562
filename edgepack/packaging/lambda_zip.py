"""The Lambda zip: the artifact root, zipped reproducibly, within Lambda's size limits.

Over a limit, the error lists the largest contributors by top-level package (with
``*.dist-info`` and ``*.libs`` counted with their package) so the fix is obvious, and
nothing is left at the destination.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BudgetExceededError
from ..targets import Limits
from .archive import iter_tree, write_zip

_MIB = 1024 * 1024
LARGEST_SHOWN = 5


@dataclass(frozen=True)
class PackageReport:
    path: Path
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    largest: list[tuple[str, int]] = field(default_factory=list)  # (package, unzipped bytes), biggest first
    largest_zipped: list[tuple[str, int]] = field(default_factory=list)  # (package, compressed bytes)


def package_of(name: str) -> str:
    """The top-level package a zip entry belongs to: ``numpy/x.so``, ``numpy.libs/y.so`` and
    ``numpy-2.4.6.dist-info/RECORD`` all count as ``numpy``; ``six.py`` as ``six``."""
    top, sep, _ = name.partition("/")
    if not sep:
        if top.endswith(".py"):
            return top[: -len(".py")]
        if top.endswith(".so") or ".so." in top:
            return top.split(".", 1)[0]  # _cffi_backend.cpython-312-x86_64-linux-gnu.so
        return top
    for suffix in (".dist-info", ".data"):
        if top.endswith(suffix):
            return top[: -len(suffix)].split("-", 1)[0]
    if top.endswith(".libs"):
        return top[: -len(".libs")]
    return top


def _ranked(sizes: Counter[str]) -> list[tuple[str, int]]:
    return sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))


def _mb(n: int) -> str:
    return f"{n / _MIB:.1f} MB"


def _over_budget(
    what: str, size: int, limit: int, label: str, ranked: list[tuple[str, int]]
) -> BudgetExceededError:
    shown = ", ".join(f"{pkg} {_mb(n)}" for pkg, n in ranked[:LARGEST_SHOWN])
    more = ", ..." if len(ranked) > LARGEST_SHOWN else ""
    return BudgetExceededError(f"{what} {_mb(size)}, over the {_mb(limit)} {label}; largest: {shown}{more}")


def package_lambda(staging: Path, dest_zip: Path, limits: Limits, epoch: int | None = None) -> PackageReport:
    """Zip ``staging`` reproducibly into ``dest_zip`` if it fits ``limits``.

    Over the unzipped limit (checked before zipping) or the zipped limit, raises
    ``BudgetExceededError`` naming the size, the limit and the largest packages (by the
    measure that is over), and leaves ``dest_zip`` as it was.
    """
    staging = Path(staging)
    dest_zip = Path(dest_zip)
    unzipped: Counter[str] = Counter()
    files = 0
    for name, path in iter_tree(staging):
        unzipped[package_of(name)] += path.stat().st_size
        files += 1
    unzipped_total = sum(unzipped.values())
    if limits.unzipped_bytes is not None and unzipped_total > limits.unzipped_bytes:
        raise _over_budget(
            "lambda zip unzips to", unzipped_total, limits.unzipped_bytes, "unzipped limit", _ranked(unzipped)
        )

    dest_zip.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest_zip.name}.", suffix=".partial", dir=dest_zip.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write_zip(staging, tmp, epoch)
        zipped_total = tmp.stat().st_size
        zipped: Counter[str] = Counter()
        with zipfile.ZipFile(tmp) as zf:
            for info in zf.infolist():
                zipped[package_of(info.filename)] += info.compress_size
        if limits.zipped_bytes is not None and zipped_total > limits.zipped_bytes:
            raise _over_budget(
                "lambda zip is", zipped_total, limits.zipped_bytes, "direct-upload limit", _ranked(zipped)
            )
        os.replace(tmp, dest_zip)
    finally:
        tmp.unlink(missing_ok=True)
    return PackageReport(
        path=dest_zip,
        zipped_bytes=zipped_total,
        unzipped_bytes=unzipped_total,
        files=files,
        largest=_ranked(unzipped)[:10],
        largest_zipped=_ranked(zipped)[:10],
    )
