"""Unpacking an artifact (zip or tar bundle) into a fresh directory, refusing anything unsafe.

Both formats obey the same rules as ``safe_extract_zip``: names checked before anything
is written, regular files and directories only, a size bound, files created with
``O_EXCL | O_NOFOLLOW`` in a temporary directory renamed into place, so a refused archive
leaves nothing behind. Modes are normalised to 0644, or 0755 for executables.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

from ..errors import PackagingError, UnsafePathError
from .archive import MAX_EXTRACT_BYTES, check_relpath, safe_extract_zip, write_new_file


def safe_extract_tar(tar_path: Path, dest: Path, *, max_bytes: int = MAX_EXTRACT_BYTES) -> list[str]:
    """Unpack the (compressed) tar ``tar_path`` into ``dest`` (absent or empty); return the file names."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or dest.is_symlink() or any(dest.iterdir())):
        raise PackagingError(f"{dest}: extraction target exists and is not an empty directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    names: list[str] = []
    seen: set[str] = set()
    total = 0
    try:
        with tarfile.open(tar_path, mode="r|*") as tf:
            for member in tf:
                name = check_relpath(member.name.rstrip("/"))
                if name in seen:
                    raise UnsafePathError(f"{name!r}: tar member appears twice")
                seen.add(name)
                target = tmp.joinpath(*name.split("/"))
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isreg():
                    raise UnsafePathError(f"{name!r}: tar member is not a regular file or directory")
                total += member.size
                if total > max_bytes:
                    raise UnsafePathError(f"unpacks to over {max_bytes} bytes")
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(member)
                assert src is not None  # regular members always have a stream
                write_new_file(target, src, executable=bool(member.mode & 0o111))
                names.append(name)
        os.replace(tmp, dest)
    except UnsafePathError as e:
        e.where = e.where or str(tar_path)
        raise
    except FileExistsError as e:
        raise UnsafePathError(
            f"{e.filename}: member is both a file and a directory", where=str(tar_path)
        ) from e
    except (tarfile.TarError, zlib.error, EOFError, OSError) as e:
        raise PackagingError(f"{tar_path}: cannot unpack: {e}") from e
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return names


def extract_artifact(artifact: Path, dest: Path) -> list[str]:
    """Unpack a Lambda zip or a tar bundle into ``dest``, by content, not by name."""
    if zipfile.is_zipfile(artifact):
        return safe_extract_zip(artifact, dest)
    if tarfile.is_tarfile(artifact):
        return safe_extract_tar(artifact, dest)
    raise PackagingError(f"{artifact}: not a zip or tar archive")
