"""ONNX Runtime backend with an execution-provider chain.

Settings (the target profile's ``runtime_settings``):

- ``providers``: ordered chain, each ``"Name"`` or ``{"name": ..., "options": {...}}``, e.g.
  TensorRT -> CUDA -> CPU. Providers this onnxruntime build lacks are dropped with one
  warning naming them; ``CPUExecutionProvider`` always ends the chain as the fallback.
  For TensorRT with ``trt_engine_cache_enable``, ``trt_engine_cache_path`` is the *base*
  directory: engines go to ``base/<key>`` with the key from ``trt_cache`` (model sha256,
  TensorRT version, GPU compute capability, precision), so an engine built for another
  model, TensorRT or GPU is never loaded. Default base: ``$EDGEPACK_TRT_CACHE_DIR`` or
  ``~/.cache/edgepack/trt``.
- ``precision``: what the cache key records (default: derived from the TensorRT flags).
- ``threads``: ``intra_op_num_threads`` (0 = ONNX Runtime decides).
- ``graph_optimization_level``: ``disable`` | ``basic`` | ``extended`` | ``all`` (default).

Any other key is a ``ModelLoadError``: a misspelt setting must not be silently ignored.

Imports only numpy and onnxruntime (inside ``load``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, BadRequestError, InferenceError, ModelLoadError
from ..hashing import sha256_file
from ..signature import IOSignature, TensorSpec
from ..trt_cache import (
    describe_cache_key,
    detect_compute_capability,
    detect_tensorrt_version,
    precision_from_trt_options,
)

logger = logging.getLogger("edgepack.runtime")

CPU = "CPUExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
TRT_CACHE_ENV = "EDGEPACK_TRT_CACHE_DIR"
SETTINGS = frozenset({"providers", "precision", "threads", "graph_optimization_level"})

# ONNX Runtime's type strings -> numpy dtype names (edgepack.model.onnx reads them too)
ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(uint16)": "uint16",
    "tensor(int32)": "int32",
    "tensor(uint32)": "uint32",
    "tensor(int64)": "int64",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}

_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def _one_line(e: BaseException) -> str:
    return " ".join((str(e) or type(e).__name__).split())


def _spec(arg: Any) -> TensorSpec:
    dtype = ORT_DTYPES.get(arg.type)
    if dtype is None:
        raise ModelLoadError(f"tensor {arg.name!r} has type {arg.type}, which edgepack cannot serve")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (arg.shape or ()))
    return TensorSpec(name=arg.name, dtype=dtype, shape=shape)


def parse_providers(raw: Any) -> list[tuple[str, dict[str, Any]]]:
    """``settings["providers"]`` as ``[(name, options)]``; a bad entry is a ModelLoadError."""
    if raw is None:
        return [(CPU, {})]
    if not isinstance(raw, list | tuple):
        raise ModelLoadError("runtime setting 'providers' must be a list")
    chain: list[tuple[str, dict[str, Any]]] = []
    for i, entry in enumerate(raw):
        if isinstance(entry, str):
            chain.append((entry, {}))
        elif isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            options = entry.get("options") or {}
            if not isinstance(options, Mapping):
                raise ModelLoadError(f"runtime setting providers[{i}].options must be a mapping")
            chain.append((entry["name"], dict(options)))
        else:
            raise ModelLoadError(f"runtime setting providers[{i}] must be a name or {{name, options}}")
    return chain


def resolve_chain(
    requested: list[tuple[str, dict[str, Any]]], available: list[str]
) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """Keep the providers this build has, in order, CPU last; return (chain, dropped names)."""
    have = set(available)
    chain = [(n, o) for n, o in requested if n in have and n != CPU]
    dropped = [n for n, _ in requested if n not in have]
    cpu_options = next((o for n, o in requested if n == CPU), {})
    chain.append((CPU, cpu_options))
    return chain, list(dict.fromkeys(dropped))


def _option_value(value: Any) -> str:
    # ONNX Runtime's provider options are strings; its parsers read "True"/"False".
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _enabled(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true")
    return bool(value)


def tensorrt_options(
    options: Mapping[str, Any], model_path: Path, precision: str | None = None
) -> tuple[dict[str, Any], dict[str, str] | None]:
    """TensorRT provider options with the engine cache moved to its keyed directory.

    ``trt_engine_cache_path`` (or ``$EDGEPACK_TRT_CACHE_DIR``, or ``~/.cache/edgepack/trt``)
    is the base; engines go to ``base/<key>``, the key covering the model's sha256, the
    TensorRT version, the GPU's compute capability and the precision (given, or read
    from the fp16/int8 flags). Returns the options and the key's description (None when
    the engine cache is off).
    """
    opts = dict(options)
    if not _enabled(opts.get("trt_engine_cache_enable", False)):
        return opts, None
    base = Path(opts.get("trt_engine_cache_path") or os.environ.get(TRT_CACHE_ENV) or _default_trt_cache())
    trt_version = detect_tensorrt_version()
    cc = detect_compute_capability(int(opts.get("device_id", 0)))
    info = describe_cache_key(
        sha256_file(model_path), trt_version, cc, precision or precision_from_trt_options(opts)
    )
    cache_dir = base / info["key"]
    timing = base / f"timing-trt{trt_version}"
    want_timing = _enabled(opts.get("trt_timing_cache_enable", False)) and not opts.get(
        "trt_timing_cache_path"
    )
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        if want_timing:
            timing.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        # An unwritable cache costs an engine build per start, not the service: run uncached.
        logger.warning("TensorRT engine cache %s unusable (%s); building engines without a cache", base, e)
        opts["trt_engine_cache_enable"] = False
        opts["trt_timing_cache_enable"] = False
        return opts, {**info, "path": "", "error": str(e)}
    opts["trt_engine_cache_path"] = str(cache_dir)
    if want_timing:
        # Timing caches hold kernel timings: valid for any model on the same GPU and TensorRT
        # (ONNX Runtime names the file by compute capability), so they live beside the engines.
        opts["trt_timing_cache_path"] = str(timing)
    return opts, {**info, "path": str(cache_dir)}


def _default_trt_cache() -> Path:
    return Path.home() / ".cache" / "edgepack" / "trt"


class OnnxRuntimeBackend:
    """A model loaded in an ``onnxruntime.InferenceSession``."""

    name = "onnxruntime"

    def __init__(self, path: Path, settings: Mapping[str, Any]) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendUnavailableError(
                "onnxruntime is not installed in this environment (runtime package onnxruntime)"
            ) from e
        self._ort = ort
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelLoadError(f"model file {self.path} does not exist")
        unknown = sorted(set(settings) - SETTINGS)
        if unknown:
            raise ModelLoadError(
                f"unknown onnxruntime runtime setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(SETTINGS))}"
            )
        requested = parse_providers(settings.get("providers"))
        chain, dropped = resolve_chain(requested, list(ort.get_available_providers()))
        if dropped:
            logger.warning(
                "onnxruntime %s lacks execution provider(s) %s; falling back along %s",
                ort.__version__,
                ", ".join(dropped),
                " -> ".join(n for n, _ in chain),
            )
        self._trt_cache: dict[str, str] | None = None
        for i, (provider, provider_options) in enumerate(chain):
            if provider == TENSORRT:
                opts, self._trt_cache = tensorrt_options(
                    provider_options, self.path, settings.get("precision")
                )
                chain[i] = (provider, opts)

        options = ort.SessionOptions()
        threads = settings.get("threads")
        if threads is not None:
            if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
                raise ModelLoadError(f"runtime setting 'threads' must be an integer >= 0, got {threads!r}")
            options.intra_op_num_threads = threads
        level = str(settings.get("graph_optimization_level", "all")).lower()
        if level not in _OPT_LEVELS:
            raise ModelLoadError(
                f"runtime setting 'graph_optimization_level' must be one of {', '.join(_OPT_LEVELS)}, "
                f"got {level!r}"
            )
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS[level])
        try:
            self.session = ort.InferenceSession(
                str(self.path),
                sess_options=options,
                providers=[n for n, _ in chain],
                provider_options=[{k: _option_value(v) for k, v in o.items()} for n, o in chain],
            )
        except Exception as e:
            raise ModelLoadError(f"onnxruntime cannot load {self.path.name}: {_one_line(e)}") from e

        self.requested_providers = [n for n, _ in requested]
        self.unavailable_providers = dropped
        self.providers = list(self.session.get_providers())
        self.provider = self.providers[0]
        self.threads = threads
        self.graph_optimization_level = level
        logger.info("onnxruntime %s runs %s with %s", ort.__version__, self.path.name, self.provider)
        self.signature = IOSignature(
            inputs=tuple(_spec(a) for a in self.session.get_inputs()),
            outputs=tuple(_spec(a) for a in self.session.get_outputs()),
        )
        self._output_names = list(self.signature.output_names)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            # InferenceSession.run is thread-safe: no lock, concurrent requests run in parallel.
            outputs = self.session.run(self._output_names, feeds)
        except Exception as e:
            text = _one_line(e)
            if "INVALID_ARGUMENT" in text or "Invalid" in type(e).__name__:
                raise BadRequestError(f"onnxruntime rejected the input: {text}") from e
            raise InferenceError(f"onnxruntime failed: {text}") from e
        return {n: np.asarray(o) for n, o in zip(self._output_names, outputs, strict=True)}

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "version": self._ort.__version__,
            "provider": self.provider,
            "providers": self.providers,
            "requested_providers": self.requested_providers,
            "unavailable_providers": self.unavailable_providers,
            "threads": self.threads,
            "graph_optimization_level": self.graph_optimization_level,
            "trt_engine_cache": self._trt_cache,
        }


def load(path: Path, settings: Mapping[str, Any]) -> OnnxRuntimeBackend:
    """Load an ONNX model with the settings' provider chain."""
    return OnnxRuntimeBackend(Path(path), settings)
