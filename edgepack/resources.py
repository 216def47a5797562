"""Where the shipped data lives: ``targets/`` and ``templates/``.

In a wheel they are package data under ``edgepack/_data``; in a source checkout they
are the top-level directories of the repository (the source of truth).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    installed = _PACKAGE_DIR / "_data" / name
    if installed.is_dir():
        return installed
    return _PACKAGE_DIR.parent / name


def targets_dir() -> Path:
    return _data_dir("targets")


def templates_dir() -> Path:
    return _data_dir("templates")


def runtime_package_dir() -> Path:
    """The runtime core, copied into every artifact as ``edgepack_runtime``."""
    return _PACKAGE_DIR / "runtime"
