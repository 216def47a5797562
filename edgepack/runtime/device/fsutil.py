"""Durable file-system steps: fsync of files and directories, atomic writes and symlink switches.

A power cut may lose any write that was not followed by an fsync of the file and of the
directory holding its name; every step the installer's crash safety relies on goes
through here.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Every file and directory under ``root`` (after an unpack, before it becomes a slot)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY | os.O_NOFOLLOW)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def atomic_write(path: Path, data: bytes) -> None:
    """Write a temporary sibling, fsync it, rename it over ``path``, fsync the directory."""
    atomic_write_with(path, lambda f: f.write(data))


def atomic_write_with(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``atomic_write`` for content that ``write(file)`` streams (the one atomic-write helper)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # whatever the umask: readers on the device are other users
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def switch_symlink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` atomically: a new symlink renamed over the old one."""
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex}.tmp")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    fsync_dir(link.parent)


def remove_tree(path: Path, trash: Path) -> None:
    """Move ``path`` into ``trash`` (one rename: it is gone from its place at once), then delete it.

    Killed half-way, what is left sits in ``trash``, which the next run empties.
    """
    if not os.path.lexists(path):
        return
    trash.mkdir(parents=True, exist_ok=True)
    doomed = trash / f"rm-{uuid.uuid4().hex}"
    os.rename(path, doomed)
    fsync_dir(path.parent)
    shutil.rmtree(doomed, ignore_errors=True)
