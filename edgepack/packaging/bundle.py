"""OTA bundle: a deterministic gzip-compressed tar of the artifact root.

``attestation.dsse.json`` comes first, so a reader checks the signature before it hashes or
writes any other member; the other entries follow sorted, owned by 0:0 with empty names,
stamped with the build epoch, with fixed modes (0644, 0755 for executables and shared
objects); the gzip header carries no name and mtime 0. Same inputs, same bytes.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import PackagingError
from ..runtime.manifest import ATTESTATION_FILE
from .archive import file_mode


@dataclass(frozen=True)
class BundleReport:
    bundle_bytes: int
    unpacked_bytes: int
    files: int


def write_bundle(src_dir: Path, dest: Path, epoch: int) -> BundleReport:
    """Write ``src_dir`` as a reproducible ``.tar.gz`` at ``dest`` (atomically)."""
    files = sorted(
        (p for p in src_dir.rglob("*") if p.is_file() or p.is_symlink()),
        key=lambda p: (p.relative_to(src_dir).as_posix() != ATTESTATION_FILE, p),
    )
    raw = io.BytesIO()
    unpacked = 0
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            if path.is_symlink():
                raise PackagingError(f"refusing to bundle a symlink: {path.relative_to(src_dir)}")
            info = tarfile.TarInfo(path.relative_to(src_dir).as_posix())
            info.size = path.stat().st_size
            info.mtime = epoch
            info.mode = file_mode(path, path.lstat().st_mode)
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
