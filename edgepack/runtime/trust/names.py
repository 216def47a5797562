"""The names an artifact may hold: safe, canonical relative POSIX paths, unique on any filesystem.

Canonical matters as much as safe: ``a/./b`` names the same file as ``a/b``, a name in
NFD is the same file as its NFC twin on macOS, ``Handler.py`` the same as ``handler.py``
on a case-insensitive filesystem, and a right-to-left override makes ``gpj.py`` read as
``yp.jpg``. Accepting any of them would let one file hide behind another name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from ..failures import EdgepackError
from .errors import UnsafePathError

_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def unsafe_path_reason(name: str) -> str | None:
    """Why ``name`` is not a safe, canonical relative POSIX path, or None when it is."""
    if not name:
        return "empty path"
    if _CONTROL_RE.search(name):
        return "control character in path"
    # ASCII holds no format character (the first is U+00AD), always encodes and is its own
    # NFC: the per-character checks below are for other names only.
    ascii_only = name.isascii()
    if not ascii_only and any(unicodedata.category(ch) == "Cf" for ch in name):
        return "invisible format or bidi character in path"
    if "\\" in name:
        return "backslash in path"
    if name.startswith("/"):
        return "absolute path"
    if _DRIVE_RE.match(name):
        return "drive-letter path"
    if not ascii_only:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return "path is not valid UTF-8"
        if unicodedata.normalize("NFC", name) != name:
            return "path is not in Unicode NFC"
    for part in name.split("/"):
        if part == "":
            return "empty path component"
        if part in (".", ".."):
            return f"{part!r} path component"
    return None


def check_relpath(name: str, error: type[EdgepackError] = UnsafePathError) -> str:
    """Return ``name`` if it is a safe canonical relative path, else raise ``error`` naming it."""
    reason = unsafe_path_reason(name)
    if reason is not None:
        raise error(f"{name!r}: unsafe path ({reason})")
    return name


def fold(name: str) -> str:
    """The key two names share when some filesystem would store them as one file."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def _parents(name: str) -> Iterable[str]:
    parts = name.split("/")
    return ("/".join(parts[:i]) for i in range(1, len(parts)))


class NameSet:
    """The names of one artifact so far; refuses unsafe names, twins, and file/directory clashes."""

    def __init__(self, error: type[EdgepackError] = UnsafePathError) -> None:
        self._error = error
        self._files: dict[str, str] = {}  # folded -> name
        self._dirs: dict[str, str] = {}
        self._explicit: set[str] = set()  # folded names of directories that were entries

    def add(self, name: str, *, is_dir: bool = False) -> str:
        check_relpath(name, self._error)
        key = fold(name)
        earlier = self._files.get(key) or (self._dirs.get(key) if key in self._explicit else None)
        if earlier is not None:
            same = (
                "appears twice" if earlier == name else f"is the same file as {earlier!r} on some filesystems"
            )
            raise self._error(f"{name!r}: {same}")
        if not is_dir and key in self._dirs:
            raise self._error(f"{name!r}: is both a file and a directory ({self._dirs[key]!r})")
        for parent in _parents(name):
            pkey = fold(parent)
            if pkey in self._files:
                raise self._error(f"{parent!r}: is both a file and a directory")
            known = self._dirs.setdefault(pkey, parent)
            if known != parent:
                raise self._error(f"{parent!r}: is the same directory as {known!r} on some filesystems")
        if is_dir:
            known = self._dirs.setdefault(key, name)
            if known != name:
                raise self._error(f"{name!r}: is the same directory as {known!r} on some filesystems")
            self._explicit.add(key)
        else:
            self._files[key] = name
        return name

    def files(self) -> list[str]:
        return sorted(self._files.values())


def check_unique(names: Iterable[str], error: type[EdgepackError] = UnsafePathError) -> None:
    """Refuse unsafe names, and names that would be one file after case folding or normalisation."""
    seen = NameSet(error)
    for name in names:
        seen.add(name)
