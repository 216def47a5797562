"""Versions of the tools that decide a build's output (for cache keys and provenance)."""

from __future__ import annotations

from functools import cache
from importlib import metadata

# Distributions whose version changes what a conversion produces.
CONVERTER_DISTRIBUTIONS = (
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "ai-edge-litert",
    "onnx",
    "onnxruntime",
    "tf2onnx",
    "onnxconverter-common",
    "openvino",
    "nncf",
    "numpy",
)


@cache
def distribution_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def tool_versions() -> dict[str, str]:
    """Installed converter/runtime versions, by distribution name (missing ones left out)."""
    found = {name: distribution_version(name) for name in CONVERTER_DISTRIBUTIONS}
    return {name: v for name, v in found.items() if v is not None}
