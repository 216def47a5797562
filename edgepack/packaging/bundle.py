"""OTA bundle: a deterministic gzip-compressed tar of the artifact root.

Entries are sorted, owned by 0:0 with empty names, stamped with the build epoch, with
fixed modes; the gzip header carries no name and mtime 0. Same inputs, same bytes.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import PackagingError


@dataclass(frozen=True)
class BundleReport:
    bundle_bytes: int
    unpacked_bytes: int
    files: int


def _mode(path: Path) -> int:
    executable = os.access(path, os.X_OK) or path.suffix == ".so" or ".so." in path.name
    return 0o755 if executable else 0o644


def write_bundle(src_dir: Path, dest: Path, epoch: int) -> BundleReport:
    """Write ``src_dir`` as a reproducible ``.tar.gz`` at ``dest`` (atomically)."""
    files = sorted(p for p in src_dir.rglob("*") if p.is_file() or p.is_symlink())
    raw = io.BytesIO()
    unpacked = 0
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            if path.is_symlink():
                raise PackagingError(f"refusing to bundle a symlink: {path.relative_to(src_dir)}")
            info = tarfile.TarInfo(path.relative_to(src_dir).as_posix())
            info.size = path.stat().st_size
            info.mtime = epoch
            info.mode = _mode(path)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            unpacked += info.size
            with open(path, "rb") as f:
                tar.addfile(info, f)
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        with (
            open(tmp, "wb") as out,
            gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz,
        ):
            gz.write(raw.getvalue())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return BundleReport(bundle_bytes=dest.stat().st_size, unpacked_bytes=unpacked, files=len(files))
