"""Inference backends. Each module imports its framework lazily, inside ``load``."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from .base import Backend

# backend name (as written in the manifest) -> module implementing ``load(path, settings)``
_BACKEND_MODULES = {
    "litert": ".litert",
    "onnxruntime": ".onnxruntime",
    "openvino": ".openvino",
}


def load_backend(name: str, model_path: Path, settings: Mapping[str, Any]) -> Backend:
    """Load ``model_path`` with the named backend and the target's runtime settings."""
    module_name = _BACKEND_MODULES.get(name)
    if module_name is None:
        raise ModelLoadError(f"unknown backend {name!r}; known: {', '.join(sorted(_BACKEND_MODULES))}")
    module = importlib.import_module(module_name, __package__)
    backend: Backend = module.load(Path(model_path), dict(settings))
    return backend


__all__ = ["Backend", "load_backend"]
