"""Deterministic zip archives, the path rules every archive entry obeys, and safe extraction.

Same tree and same ``SOURCE_DATE_EPOCH`` give the same bytes: entries sorted by POSIX
path, no directory entries, fixed timestamps, fixed modes (0644, 0755 for executables
and shared objects), deflate level 9, no extra fields. Writes go to a temporary file
beside the destination and are renamed into place, so a reader never sees half a zip.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import ConfigError, EdgepackError, PackagingError, UnsafePathError

EPOCH_ENV = "SOURCE_DATE_EPOCH"
# 1980-01-01T00:00:00Z: the earliest time a zip entry can carry (DOS date format).
ZIP_MIN_EPOCH = 315532800
# 2107-12-31T23:59:58Z: the latest.
ZIP_MAX_EPOCH = 4354819198
# Refuse to unpack archives that claim more than this (zip bombs); artifacts are far smaller.
MAX_EXTRACT_BYTES = 8 << 30

_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def unsafe_path_reason(name: str) -> str | None:
    """Why ``name`` is not a safe, canonical relative POSIX path, or None when it is.

    Canonical matters as much as safe: ``a/./b`` and ``a//b`` name the same file as
    ``a/b``, so accepting them would let one file hide behind two names.
    """
    if not name:
        return "empty path"
    if _CONTROL_RE.search(name):
        return "control character in path"
    if "\\" in name:
        return "backslash in path"
    if name.startswith("/"):
        return "absolute path"
    if _DRIVE_RE.match(name):
        return "drive-letter path"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "path is not valid UTF-8"
    for part in name.split("/"):
        if part == "":
            return "empty path component"
        if part in (".", ".."):
            return f"{part!r} path component"
    return None


def check_relpath(name: str, error: type[EdgepackError] = UnsafePathError) -> str:
    """Return ``name`` if it is a safe relative path, else raise ``error`` naming it."""
    reason = unsafe_path_reason(name)
    if reason is not None:
        raise error(f"{name!r}: unsafe path ({reason})")
    return name


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


# -- reading --------------------------------------------------------------------------


def zip_entry_kind(info: zipfile.ZipInfo) -> str:
    """``file``, ``dir``, or the reason the entry is not a plain file or directory."""
    mode = info.external_attr >> 16
    fmt = stat.S_IFMT(mode)
    if stat.S_ISLNK(mode):
        return "symlink"
    if fmt not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "special file"
    if info.flag_bits & 0x1:
        return "encrypted entry"
    if info.filename.endswith("/") or stat.S_ISDIR(mode):
        return "dir"
    return "file"


def checked_zip_entries(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The zip's file entries, after refusing anything an extractor could be tricked by.

    Refuses (``UnsafePathError``): unsafe or non-canonical names, names cut short by a NUL,
    symlinks, special files, encrypted entries, duplicate names, and a name that is both a
    file and a directory. Directory entries are checked and then left out.
    """
    files: list[zipfile.ZipInfo] = []
    seen: set[str] = set()
    dirs: set[str] = set()
    for info in zf.infolist():
        if info.orig_filename != info.filename and "\x00" in info.orig_filename:
            raise UnsafePathError(f"{info.orig_filename!r}: zip entry name contains a NUL byte")
        kind = zip_entry_kind(info)
        name = info.filename.rstrip("/") if kind == "dir" else info.filename
        check_relpath(name)
        if kind not in ("file", "dir"):
            raise UnsafePathError(f"{name!r}: zip entry is a {kind}; only regular files are allowed")
        if name in seen:
            raise UnsafePathError(f"{name!r}: zip entry appears twice")
        seen.add(name)
        parts = name.split("/")
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))
        if kind == "dir":
            dirs.add(name)
        else:
            files.append(info)
    for info in files:
        if info.filename in dirs:
            raise UnsafePathError(f"{info.filename!r}: zip entry is both a file and a directory")
    return files


def write_new_file(target: Path, src: IO[bytes], *, executable: bool) -> None:
    """Copy ``src`` into ``target``, which must not exist (no following a planted symlink);
    mode 0755 for executables, else 0644, whatever the umask."""
    mode = 0o755 if executable else 0o644
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(target, flags, mode), "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    os.chmod(target, mode)  # the umask may have taken bits from os.open's mode


def safe_extract_zip(zip_path: Path, dest: Path, *, max_bytes: int = MAX_EXTRACT_BYTES) -> list[str]:
    """Unpack ``zip_path`` into ``dest`` (which must not exist, or be empty); return the file names.

    Every entry is checked before anything is written (see :func:`checked_zip_entries`);
    files are unpacked into a temporary directory beside ``dest`` and renamed into place,
    so a refused or broken zip leaves nothing behind. Modes: 0755 when the entry was
    executable, else 0644.
    """
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or dest.is_symlink() or any(dest.iterdir())):
        raise PackagingError(f"{dest}: extraction target exists and is not an empty directory")
    try:
        zf = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as e:
        raise PackagingError(f"{zip_path}: not a readable zip archive: {e}") from e
    with zf:
        entries = checked_zip_entries(zf)
        total = sum(info.file_size for info in entries)
        if total > max_bytes:
            raise UnsafePathError(f"{zip_path}: unpacks to {total} bytes, over the {max_bytes}-byte limit")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
        try:
            for info in entries:
                target = tmp.joinpath(*info.filename.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src:
                    write_new_file(target, src, executable=bool((info.external_attr >> 16) & 0o111))
            os.replace(tmp, dest)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
            raise PackagingError(f"{zip_path}: cannot unpack: {e}") from e
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return [info.filename for info in entries]
