"""User hooks: optional pre/post-processing and event callbacks from the project.

The project's hooks file is packaged at the artifact root (``edgepack_user_hooks.py``)
and named in the manifest. Every function is optional:

``preprocess(inputs: dict[str, np.ndarray]) -> Mapping``
    runs after the request is decoded, before validation against the model signature;
    it may rename, add or convert inputs (e.g. decode an image into a tensor).
``postprocess(outputs: dict[str, np.ndarray]) -> Mapping``
    runs after the model; it may add outputs (e.g. the predicted ``label``).
``on_event(event: TelemetryEvent) -> None``
    receives every telemetry event; its exceptions are swallowed and counted.

Inputs reach ``preprocess`` as arrays (``np.asarray`` of the JSON values, so a string
arrives as a 0-d string array). A hook that rejects its input raises ``BadRequestError``
(answered 400); any other exception is an internal error (answered 500, logged). In an
artifact the runtime is the top-level package ``edgepack_runtime``; a hooks file that
also runs against an installed edgepack imports it as::

    try:
        from edgepack_runtime.errors import BadRequestError
    except ImportError:
        from edgepack.runtime.errors import BadRequestError
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelLoadError
from .telemetry import TelemetryEvent

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
HOOK_NAMES = ("preprocess", "postprocess", "on_event")


@dataclass(frozen=True)
class Hooks:
    """The user's callables; ``None`` where the hooks module does not define one."""

    preprocess: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None
    postprocess: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None
    on_event: Callable[[TelemetryEvent], object] | None = None
    module: str | None = None  # the module they came from, for messages


def load_hooks(module_name: str | None, root: Path) -> Hooks:
    """Import ``module_name`` from the artifact ``root`` and collect its hooks.

    ``None`` gives empty hooks. The module is always loaded from ``root`` (not from
    whatever ``sys.path`` holds first), so two artifacts with the same hooks module name
    in one process each get their own. A module that is missing, fails to import or
    defines a hook that is not callable raises ``ModelLoadError`` naming it.
    """
    if module_name is None:
        return Hooks()
    if not _MODULE_NAME.match(module_name):
        raise ModelLoadError(f"hooks module {module_name!r} is not a Python module name")
    root = Path(root)
    top, _, _rest = module_name.partition(".")
    spec = importlib.machinery.PathFinder.find_spec(top, [str(root)])
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"hooks module {module_name!r} not found in {root}")

    # Forget an earlier load of the same name (another artifact, a previous init).
    for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
        del sys.modules[name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[top] = module  # registered first: dataclasses and pickling inside need it
    try:
        spec.loader.exec_module(module)
        if module_name != top:
            module = importlib.import_module(module_name)
    except Exception as e:
        sys.modules.pop(top, None)
        raise ModelLoadError(
            f"hooks module {module_name!r} ({spec.origin}) failed to import: {type(e).__name__}: {e}"
        ) from e

    found: dict[str, Any] = {}
    for hook in HOOK_NAMES:
        fn = getattr(module, hook, None)
        if fn is not None and not callable(fn):
            raise ModelLoadError(
                f"hooks module {module_name!r}: {hook!r} is a {type(fn).__name__}, not a function"
            )
        found[hook] = fn
    return Hooks(module=module_name, **found)
