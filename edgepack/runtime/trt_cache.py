"""TensorRT engine cache: one directory per (model, TensorRT, GPU, precision).

A TensorRT engine is compiled for one model, one TensorRT version, one GPU
architecture and one precision; loading an engine built for anything else either
fails or, worse, silently runs the wrong network. ONNX Runtime's TensorRT provider
keys its cache files by a hash of the graph only, so edgepack gives each combination
its own directory: ``base / engine_cache_key(...)``. The key is a full sha256 over a
canonical JSON of the four inputs; ``describe_cache_key`` returns them with the key
for the manifest and ``describe()``.

Standard library only: this module ships inside artifacts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

CACHE_KEY_SCHEMA = "edgepack.trt-engine-cache/v1"
NONE = "none"  # what a detector answers when TensorRT or a GPU is absent

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CC_DOTTED_RE = re.compile(r"^(\d+)\.(\d+)$")
_CC_SM_RE = re.compile(r"^(?:sm_?)?(\d+)(\d)$")


def _canonical_cc(compute_capability: str) -> str:
    """``"8.7"``, ``"87"`` and ``"sm_87"`` all mean compute capability 8.7."""
    cc = compute_capability.strip().lower()
    if cc == NONE:
        return NONE
    m = _CC_DOTTED_RE.match(cc) or _CC_SM_RE.match(cc)
    if not m:
        raise ValueError(f"compute capability {compute_capability!r} is not like '8.7' or 'sm_87'")
    return f"{int(m.group(1))}.{int(m.group(2))}"


def _canonical(
    model_sha256: str, trt_version: str, compute_capability: str, precision: str
) -> dict[str, str]:
    sha = model_sha256.strip().lower()
    if not _SHA256_RE.match(sha):
        raise ValueError(f"model_sha256 must be 64 hex digits, got {model_sha256!r}")
    version = trt_version.strip()
    prec = precision.strip().lower()
    if not version:
        raise ValueError("trt_version is empty (use 'none' when TensorRT is absent)")
    if not prec:
        raise ValueError("precision is empty")
    return {
        "schema": CACHE_KEY_SCHEMA,
        "model_sha256": sha,
        "trt_version": version,
        "compute_capability": _canonical_cc(compute_capability),
        "precision": prec,
    }


def engine_cache_key(model_sha256: str, trt_version: str, compute_capability: str, precision: str) -> str:
    """Full sha256 (hex) over the canonical JSON of the four inputs."""
    data = _canonical(model_sha256, trt_version, compute_capability, precision)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def engine_cache_dir(
    base: str | Path, model_sha256: str, trt_version: str, compute_capability: str, precision: str
) -> Path:
    """``base / key``: the engine cache directory for exactly this combination (not created)."""
    return Path(base) / engine_cache_key(model_sha256, trt_version, compute_capability, precision)


def describe_cache_key(
    model_sha256: str, trt_version: str, compute_capability: str, precision: str
) -> dict[str, str]:
    """The four (canonical) inputs and the key, as recorded in the manifest."""
    data = _canonical(model_sha256, trt_version, compute_capability, precision)
    data["key"] = engine_cache_key(model_sha256, trt_version, compute_capability, precision)
    return data


def precision_from_trt_options(options: dict[str, Any]) -> str:
    """The precisions a TensorRT provider config allows, e.g. ``fp16+int8``; ``fp32`` when none."""
    flags = [
        name
        for name, key in (
            ("bf16", "trt_bf16_enable"),
            ("fp16", "trt_fp16_enable"),
            ("int8", "trt_int8_enable"),
        )
        if _truthy(options.get(key, False))
    ]
    return "+".join(flags) if flags else "fp32"


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


# -- detection ----------------------------------------------------------------------

_NVINFER_NAMES = ("libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so")


def _decode_trt_version(value: int) -> str:
    # TensorRT 10 encodes major*10000 + minor*100 + patch; TensorRT 8 major*1000 + minor*100 + patch.
    if value >= 10000:
        return f"{value // 10000}.{(value // 100) % 100}.{value % 100}"
    return f"{value // 1000}.{(value // 100) % 10}.{value % 100}"


def detect_tensorrt_version() -> str:
    """The TensorRT library version ONNX Runtime would load, or ``"none"``."""
    for name in _NVINFER_NAMES:
        try:
            lib = ctypes.CDLL(name)
            fn = lib.getInferLibVersion
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_int32
        fn.argtypes = []
        return _decode_trt_version(int(fn()))
    for dist in ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt-libs", "tensorrt-cu12-libs"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return NONE


def detect_compute_capability(device_id: int = 0) -> str:
    """The GPU's compute capability (``"8.7"``), or ``"none"`` without a CUDA GPU.

    Asks the CUDA driver (present on Jetson and every CUDA host), then ``nvidia-smi``.
    """
    cc = _cc_from_driver(device_id)
    if cc is not None:
        return cc
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=compute_cap", "--format=csv,noheader", "-i", str(device_id)],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
            return _canonical_cc(out.splitlines()[0])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            pass
    return NONE


def _cc_from_driver(device_id: int) -> str | None:
    path = ctypes.util.find_library("cuda") or "libcuda.so.1"
    try:
        cuda = ctypes.CDLL(path)
    except OSError:
        return None
    try:
        if cuda.cuInit(0) != 0:
            return None
        device = ctypes.c_int()
        if cuda.cuDeviceGet(ctypes.byref(device), device_id) != 0:
            return None
        major, minor = ctypes.c_int(), ctypes.c_int()
        # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, _MINOR = 76
        if cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, device) != 0:
            return None
        if cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, device) != 0:
            return None
    except AttributeError:
        return None
    return f"{major.value}.{minor.value}"
