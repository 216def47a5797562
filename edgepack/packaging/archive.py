"""Deterministic zip archives, and the path rules every archive entry obeys.

The rules (``check_relpath``) and all reading of archives live in the runtime's trust path
(``edgepack/runtime/trust``), so what a device accepts is what a build writes.

Same tree and same ``SOURCE_DATE_EPOCH`` give the same bytes: entries sorted by POSIX
path, no directory entries, fixed timestamps, fixed modes (0644, 0755 for executables
and shared objects), deflate level 9, no extra fields. Writes go to a temporary file
beside the destination and are renamed into place, so a reader never sees half a zip.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConfigError, EdgepackError, PackagingError
from ..runtime.trust.names import check_relpath, unsafe_path_reason

__all__ = ["check_relpath", "file_mode", "iter_tree", "source_date_epoch", "unsafe_path_reason", "write_zip"]

EPOCH_ENV = "SOURCE_DATE_EPOCH"
# 1980-01-01T00:00:00Z: the earliest time a zip entry can carry (DOS date format).
ZIP_MIN_EPOCH = 315532800
# 2107-12-31T23:59:58Z: the latest.
ZIP_MAX_EPOCH = 4354819198


def iter_tree(root: Path, error: type[EdgepackError] = PackagingError) -> Iterator[tuple[str, Path]]:
    """Yield ``(relative POSIX path, path)`` for every regular file under ``root``, sorted.

    Symlinks (to files or directories) and special files are refused with ``error``:
    an artifact is plain files only, so what is hashed is what is shipped.
    """
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in [*dirnames, *filenames]:
            path = base / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                raise error(f"{rel!r}: symlinks are not allowed in an artifact")
            if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                raise error(f"{rel!r}: only regular files are allowed in an artifact")
            if stat.S_ISREG(st.st_mode):
                found.append((check_relpath(rel, error), path))
    found.sort(key=lambda item: item[0])
    yield from found


def source_date_epoch() -> int:
    """``SOURCE_DATE_EPOCH`` as an int; 315532800 (1980-01-01, zip's earliest) when unset."""
    raw = os.environ.get(EPOCH_ENV, "").strip()
    if not raw:
        return ZIP_MIN_EPOCH
    if not raw.isascii() or not raw.isdigit():
        raise ConfigError(f"expected a non-negative integer number of seconds, got {raw!r}", where=EPOCH_ENV)
    return int(raw)


def file_mode(path: Path, st_mode: int) -> int:
    """0755 for executables and shared objects (``x.so``, ``x.so.1``), else 0644."""
    name = path.name
    if st_mode & 0o111 or name.endswith(".so") or ".so." in name:
        return 0o755
    return 0o644


def _zip_date_time(epoch: int) -> tuple[int, int, int, int, int, int]:
    if epoch > ZIP_MAX_EPOCH:
        raise ConfigError(f"{epoch} is past 2107, the last date a zip entry can carry", where=EPOCH_ENV)
    y, mo, d, h, mi, s = time.gmtime(max(epoch, ZIP_MIN_EPOCH))[:6]
    return (y, mo, d, h, mi, s)


def _set_compress_level(info: zipfile.ZipInfo, level: int) -> None:
    # ZipFile.open(info, "w") takes the level from the ZipInfo; the attribute is
    # ``compress_level`` from Python 3.13 and ``_compresslevel`` before.
    attr = "compress_level" if hasattr(info, "compress_level") else "_compresslevel"
    setattr(info, attr, level)


def write_zip(src_dir: Path, dest: Path, epoch: int | None = None) -> None:
    """Write every file under ``src_dir`` into a reproducible zip at ``dest`` (atomically).

    ``epoch`` defaults to :func:`source_date_epoch`; times before 1980 are stamped 1980-01-01.
    """
    src_dir = Path(src_dir)
    dest = Path(dest)
    if not src_dir.is_dir():
        raise PackagingError(f"{src_dir}: not a directory")
    if dest.resolve().is_relative_to(src_dir.resolve()):
        raise PackagingError(f"{dest}: the zip cannot be written inside the tree it archives ({src_dir})")
    date_time = _zip_date_time(source_date_epoch() if epoch is None else epoch)
    entries = list(iter_tree(src_dir))

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, path in entries:
                st = path.stat()
                info = zipfile.ZipInfo(name, date_time)
                info.create_system = 3  # Unix: the mode bits below are honoured by unzip and Lambda
                info.external_attr = (stat.S_IFREG | file_mode(path, st.st_mode)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                _set_compress_level(info, 9)
                info.file_size = st.st_size  # decides zip64 up front, as writestr would
                with open(path, "rb") as src, zf.open(info, "w") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
