"""The root's layout and its slots: which one is active, which is kept, what is left over.

::

    ROOT/.lock                 held (flock) by the one installer that runs
    ROOT/slots/<version>-<digest12>-<nonce>/
                               complete, verified versions (never changed once there)
    ROOT/active -> slots/...   the version that runs (switched by renaming a new symlink over it)
    ROOT/previous -> slots/... the one kept for rollback
    ROOT/version-floor.json    the anti-rollback floor (outside every slot)
    ROOT/journal.jsonl         what happened, one JSON line per outcome
    ROOT/tmp/                  staging and trash: emptied by every run before anything else

A slot exists in ``slots/`` only once it verified on disk and passed its health check;
anything there that neither link names is a leftover of an interrupted run.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..trust.errors import InstallError
from .fsutil import fsync_dir, remove_tree, switch_symlink

SLOTS = "slots"
ACTIVE = "active"
PREVIOUS = "previous"
TMP = "tmp"
LOCK = ".lock"
LOCK_WAIT_S = 30.0


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """Only one installer per root; the kernel drops the lock when its holder dies."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise InstallError(f"another installer holds {root / LOCK}") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def link_target(root: Path, name: str) -> Path | None:
    """The slot a link names, or None when there is no link (or it names no slot)."""
    link = root / name
    try:
        target = os.readlink(link)
    except (FileNotFoundError, OSError):
        return None
    parts = Path(target).parts
    if len(parts) != 2 or parts[0] != SLOTS or parts[1] in ("", ".", ".."):
        return None
    slot = root / target
    return slot if slot.is_dir() and not slot.is_symlink() else None


def point(root: Path, name: str, slot: Path) -> None:
    switch_symlink(root / name, f"{SLOTS}/{slot.name}")


def unlink(root: Path, name: str) -> None:
    if os.path.lexists(root / name):
        os.unlink(root / name)
        fsync_dir(root)


def new_stage(root: Path) -> Path:
    """A fresh staging directory under tmp/ (unpack into ``stage / "tree"``)."""
    stage = root / TMP / uuid.uuid4().hex
    stage.mkdir(parents=True)
    return stage


def slot_name(version: str, digest: str) -> str:
    return f"{version}-{digest[:12]}-{uuid.uuid4().hex[:8]}"


def commit(root: Path, tree: Path, name: str) -> Path:
    """Move a verified, health-checked tree into slots/ (one rename)."""
    slots = root / SLOTS
    slots.mkdir(exist_ok=True)
    final = slots / name
    os.rename(tree, final)
    fsync_dir(slots)
    fsync_dir(tree.parent)
    return final


def clean(root: Path) -> list[str]:
    """Remove what an interrupted run left: tmp/, half-made link names, slots no link names."""
    removed: list[str] = []
    tmp = root / TMP
    if tmp.exists():
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(TMP)
    for entry in root.iterdir():
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            entry.unlink(missing_ok=True)
            removed.append(entry.name)
    for name in (ACTIVE, PREVIOUS):
        if os.path.lexists(root / name) and link_target(root, name) is None:
            unlink(root, name)
            removed.append(name)
    keep = {p.name for p in (link_target(root, ACTIVE), link_target(root, PREVIOUS)) if p is not None}
    slots = root / SLOTS
    if slots.is_dir():
        for entry in sorted(slots.iterdir()):
            if entry.name not in keep:
                remove_tree(entry, tmp)
                removed.append(f"{SLOTS}/{entry.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    return removed


def prune(root: Path) -> None:
    """After a switch: delete every slot but the active and the previous one."""
    keep = {p.name for p in (link_target(root, ACTIVE), link_target(root, PREVIOUS)) if p is not None}
    slots = root / SLOTS
    for entry in sorted(slots.iterdir()):
        if entry.name not in keep:
            remove_tree(entry, root / TMP)
