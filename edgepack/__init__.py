"""edgepack: turn a trained model into signed, ready-to-run artifacts.

Importing this package is cheap; frameworks load only when a build needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .build import BuildResult


def build(project: Any, out_dir: Any, targets: list[str] | None = None, **kwargs: Any) -> BuildResult:
    """Build every (or the named) target of a project; see :func:`edgepack.build.build`."""
    from .build import build as _build

    return _build(project, out_dir, targets, **kwargs)


__all__ = ["__version__", "build"]
