"""OpenVINO backend.

Settings (the target profile's ``runtime_settings``):

- ``device``: ``AUTO`` (default), ``CPU``, ``GPU``, ``NPU`` or a virtual device such as
  ``AUTO:NPU,GPU,CPU``. A device this host lacks falls back to ``CPU`` with one warning
  (a fleet mixes hardware; an Intel box without an NPU should still serve), and
  ``describe()`` reports the device asked for and the one that runs. With
  ``device_fallback: false`` a missing device is a ``ModelLoadError`` instead.
- ``inference_precision``: ``f32`` by default. OpenVINO otherwise runs bf16 on CPUs with
  AMX / AVX512-BF16 and f16 on GPUs, which moves outputs by ~1e-2 on the sample model
  (4e-4 on others); fidelity is measured with what the artifact runs, so the profile
  chooses explicitly. ``null`` leaves the device default.
- ``performance_hint``: ``LATENCY`` | ``THROUGHPUT`` | ``CUMULATIVE_THROUGHPUT``.
- ``cache_dir``: compiled-model cache (first load compiles, later loads read the blob).
- ``threads``: CPU inference threads.
- ``batch``: ``dynamic`` (default: a static leading axis is made dynamic), an integer
  (fixed batch), or ``keep``.

Any other key is a ``ModelLoadError``: a misspelt setting must not be silently ignored.

Imports only numpy and openvino (inside ``load``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, BadRequestError, InferenceError, ModelLoadError
from ..signature import IOSignature, TensorSpec

logger = logging.getLogger("edgepack.runtime")

_VIRTUAL = ("AUTO", "MULTI", "HETERO", "BATCH")
_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
_PRECISIONS = ("f32", "f16", "bf16")
SETTINGS = frozenset(
    {"device", "device_fallback", "inference_precision", "performance_hint", "cache_dir", "threads", "batch"}
)


def _one_line(e: BaseException) -> str:
    return " ".join((str(e) or type(e).__name__).split())


def _has(available: list[str], device: str) -> bool:
    # "GPU" matches "GPU.0"; "GPU.1" must match exactly.
    return any(d == device or d.split(".")[0] == device for d in available)


def resolve_device(requested: str, available: list[str]) -> tuple[str, list[str]]:
    """The device string to compile for and the requested devices this host lacks."""
    device = requested.strip().upper()
    base, sep, rest = device.partition(":")
    if base in _VIRTUAL:
        if not sep:
            return device, []  # plain AUTO picks among what exists
        candidates = [c for c in rest.split(",") if c]
        missing = [c for c in candidates if not _has(available, c)]
        kept = [c for c in candidates if _has(available, c)]
        if not kept:
            return "CPU", missing
        return f"{base}:{','.join(kept)}", missing
    if _has(available, device):
        return device, []
    return "CPU", [device]


def _spec(port: Any) -> TensorSpec:
    pshape = port.get_partial_shape()
    if pshape.rank.is_dynamic:
        raise ModelLoadError(
            f"tensor {port.get_any_name()!r} has a dynamic rank, which edgepack cannot serve"
        )
    shape = tuple(d.get_length() if d.is_static else None for d in pshape)
    return TensorSpec(
        name=port.get_any_name(), dtype=np.dtype(port.get_element_type().to_dtype()).name, shape=shape
    )


class OpenVinoBackend:
    """A model compiled by OpenVINO for one device."""

    name = "openvino"

    def __init__(self, path: Path, settings: Mapping[str, Any]) -> None:
        try:
            import openvino as ov
        except ImportError as e:
            raise BackendUnavailableError(
                "openvino is not installed in this environment (runtime package openvino)"
            ) from e
        self._ov = ov
        self.path = Path(path)
        if not self.path.is_file() or not self.path.with_suffix(".bin").is_file():
            raise ModelLoadError(f"OpenVINO IR {self.path.name} (+ .bin) not found in {self.path.parent}")
        unknown = sorted(set(settings) - SETTINGS)
        if unknown:
            raise ModelLoadError(
                f"unknown openvino runtime setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(SETTINGS))}"
            )
        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
        except Exception as e:
            raise ModelLoadError(f"openvino cannot read {self.path.name}: {_one_line(e)}") from e
        self._reshape(model, settings.get("batch", "dynamic"))

        self.requested_device = str(settings.get("device", "AUTO"))
        self.device, missing = resolve_device(self.requested_device, list(core.available_devices))
        if missing:
            if settings.get("device_fallback", True) is False:
                raise ModelLoadError(
                    f"OpenVINO device {', '.join(missing)} is not available on this host "
                    f"(available: {', '.join(core.available_devices)})"
                )
            logger.warning(
                "OpenVINO device %s not available (available: %s); running on %s",
                ", ".join(missing),
                ", ".join(core.available_devices),
                self.device,
            )
        config, self.settings_applied = self._config(settings)
        try:
            self.compiled = core.compile_model(model, self.device, config)
        except Exception as e:
            raise ModelLoadError(
                f"openvino cannot compile {self.path.name} for {self.device}: {_one_line(e)}"
            ) from e

        self.execution_devices = list(self._property("EXECUTION_DEVICES") or [self.device])
        precision = self._property("INFERENCE_PRECISION_HINT")
        # AUTO does not answer for the device it delegates to: report what was asked for then.
        self.inference_precision = (
            _precision_name(precision) if precision is not None else self.settings_applied.get("precision")
        )
        self.signature = IOSignature(
            inputs=tuple(_spec(p) for p in self.compiled.inputs),
            outputs=tuple(_spec(p) for p in self.compiled.outputs),
        )
        self._outputs = list(self.compiled.outputs)
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request: one caller at a time
        logger.info(
            "openvino %s runs %s on %s (precision %s)",
            ov.get_version(),
            self.path.name,
            ",".join(self.execution_devices),
            self.inference_precision,
        )

    @staticmethod
    def _config(settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Settings -> OpenVINO compile properties (and the applied values, for describe)."""
        config: dict[str, Any] = {}
        applied: dict[str, Any] = {}
        precision = settings.get("inference_precision", "f32")
        if precision is not None:
            if str(precision) not in _PRECISIONS:
                raise ModelLoadError(
                    f"runtime setting 'inference_precision' must be one of {', '.join(_PRECISIONS)}, "
                    f"got {precision!r}"
                )
            config["INFERENCE_PRECISION_HINT"] = str(precision)
            applied["precision"] = str(precision)
        hint = settings.get("performance_hint")
        if hint is not None:
            if str(hint).upper() not in _HINTS:
                raise ModelLoadError(
                    f"runtime setting 'performance_hint' must be one of {', '.join(_HINTS)}, got {hint!r}"
                )
            config["PERFORMANCE_HINT"] = str(hint).upper()
            applied["performance_hint"] = str(hint).upper()
        cache_dir = settings.get("cache_dir")
        if cache_dir:
            try:
                Path(cache_dir).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                # An unwritable cache costs a compile per start, not the service: run uncached.
                logger.warning("OpenVINO cache dir %s unusable (%s); compiling without a cache", cache_dir, e)
            else:
                config["CACHE_DIR"] = str(cache_dir)
                applied["cache_dir"] = str(cache_dir)
        threads = settings.get("threads")
        if threads is not None:
            if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
                raise ModelLoadError(f"runtime setting 'threads' must be an integer >= 0, got {threads!r}")
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads
            applied["threads"] = threads
        return config, applied

    def _reshape(self, model: Any, batch: Any) -> None:
        if batch in (None, "keep"):
            return
        if batch != "dynamic" and not (isinstance(batch, int) and not isinstance(batch, bool) and batch > 0):
            raise ModelLoadError(
                f"runtime setting 'batch' must be 'dynamic', 'keep' or an integer, got {batch!r}"
            )
        shapes = {}
        for port in model.inputs:
            pshape = port.get_partial_shape()
            if pshape.rank.is_dynamic or pshape.rank.get_length() == 0:
                continue
            dims = list(pshape)
            dims[0] = self._ov.Dimension(-1 if batch == "dynamic" else batch)
            if dims != list(pshape):
                shapes[port] = self._ov.PartialShape(dims)
        if not shapes:
            return
        try:
            model.reshape(shapes)
        except Exception as e:
            # A graph with the batch baked into a Reshape cannot change it: serve it as built.
            logger.warning(
                "OpenVINO cannot make the batch axis of %s %s: %s", self.path.name, batch, _one_line(e)
            )

    def _property(self, name: str) -> Any:
        try:
            return self.compiled.get_property(name)
        except Exception:
            return None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            with self._lock:
                result = self._request.infer(feeds)
                outputs = {p.get_any_name(): np.array(result[p], copy=True) for p in self._outputs}
        except Exception as e:
            text = _one_line(e)
            if "shape" in text.lower() or "precision" in text.lower() or "port" in text.lower():
                raise BadRequestError(f"openvino rejected the input: {text}") from e
            raise InferenceError(f"openvino failed: {text}") from e
        return outputs

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "version": self._ov.get_version(),
            "requested_device": self.requested_device,
            "device": self.device,
            "execution_devices": self.execution_devices,
            "inference_precision": self.inference_precision,
            "performance_hint": self.settings_applied.get("performance_hint"),
            "cache_dir": self.settings_applied.get("cache_dir"),
            "threads": self.settings_applied.get("threads"),
        }


def _precision_name(value: Any) -> str:
    # The compiled model answers an ov.Type (<Type: 'bfloat16'>); name it as settings do ("bf16").
    get_name = getattr(value, "get_type_name", None)
    return str(get_name()) if callable(get_name) else str(value)


def load(path: Path, settings: Mapping[str, Any]) -> OpenVinoBackend:
    """Read an IR (``.xml`` with its ``.bin``) and compile it for the settings' device."""
    return OpenVinoBackend(Path(path), settings)
