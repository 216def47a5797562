"""Writing an artifact's files into a fresh directory, or only hashing them (``dest=None``).

Everything goes into a new temporary directory beside ``dest``, created here, and is
renamed into place only by ``commit``: a refused artifact leaves neither ``dest`` nor the
temporary directory. Directories are created fresh and opened ``O_NOFOLLOW`` component
by component (``openat``-style, through ``dir_fd``); files are created
``O_CREAT | O_EXCL | O_NOFOLLOW`` and given their mode with ``fchmod``, whatever the umask.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import FormatError
from .statement import DIR_MODE

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_NEW_FILE_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)


class TreeWriter:
    """Creates files and directories under a fresh temporary root; ``dest=None`` writes nothing."""

    def __init__(self, dest: Path | None) -> None:
        self.dest = None if dest is None else Path(dest)
        self.tmp: Path | None = None
        self._root_fd: int | None = None
        self._cached: tuple[str, int] | None = None  # the last directory written into, and its fd
        if self.dest is None:
            return
        if os.path.lexists(self.dest):
            raise FileExistsError(f"{self.dest}: extraction target already exists")
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.", suffix=".tmp", dir=self.dest.parent))
        self._root_fd = os.open(self.tmp, _DIR_FLAGS)
        os.fchmod(self._root_fd, DIR_MODE)

    def _dir_fd(self, rel: str) -> int:
        assert self._root_fd is not None
        if not rel:
            return self._root_fd
        if self._cached is not None and self._cached[0] == rel:
            return self._cached[1]
        self._drop_cache()
        fd = os.dup(self._root_fd)
        try:
            for part in rel.split("/"):
                try:
                    os.mkdir(part, DIR_MODE, dir_fd=fd)
                    created = True
                except FileExistsError:
                    created = False
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)  # a file there: NotADirectoryError
                os.close(fd)
                fd = child
                if created:
                    os.fchmod(fd, DIR_MODE)
        except BaseException:
            os.close(fd)
            raise
        self._cached = (rel, fd)
        return fd

    def _drop_cache(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def mkdir(self, name: str) -> None:
        if self._root_fd is not None:
            self._dir_fd(name)

    def write(
        self, name: str, chunks: Iterable[bytes], mode: int, size: int, keep: int = 0
    ) -> tuple[str, bytes]:
        """Write (or only hash) one file of ``size`` bytes; return its sha256 hex and, when
        ``keep`` > 0, its content (files over ``keep`` bytes are refused)."""
        digest = hashlib.sha256()
        kept = bytearray()
        written = 0
        fd = None
        if self._root_fd is not None:
            parent, _, leaf = name.rpartition("/")
            fd = os.open(leaf, _NEW_FILE_FLAGS, 0o600, dir_fd=self._dir_fd(parent))
        try:
            for chunk in chunks:
                written += len(chunk)
                if written > size:
                    raise FormatError(f"{name}: member holds more than its declared {size} bytes")
                digest.update(chunk)
                if keep:
                    if written > keep:
                        raise FormatError(f"{name}: larger than {keep} bytes")
                    kept += chunk
                if fd is not None:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
            if written != size:
                raise FormatError(f"{name}: member holds {written} bytes, not its declared {size}")
            if fd is not None:
                os.fchmod(fd, mode)
        finally:
            if fd is not None:
                os.close(fd)
        return digest.hexdigest(), bytes(kept)

    def commit(self) -> None:
        """Rename the finished tree into place as ``dest``."""
        self._close()
        if self.tmp is not None and self.dest is not None:
            if os.path.lexists(self.dest):
                raise FileExistsError(f"{self.dest}: extraction target appeared while extracting")
            os.rename(self.tmp, self.dest)
            self.tmp = None

    def abort(self) -> None:
        self._close()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def _close(self) -> None:
        self._drop_cache()
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None
