"""A pass: a name, a frozen typed config, and one step from model to model.

Backends are imported inside ``run`` so that importing a pass module is cheap.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigError
from ..model.base import Batch, ModelArtifact, ModelFormat


class PassConfig(BaseModel):
    """Base for pass configs: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass
class PassContext:
    """What a pass may use besides its input model."""

    work_dir: Path  # a fresh directory owned by this pass run; write outputs here
    target: str  # target profile name, for error messages
    # Calibration batches (name -> array, batch axis first); None when the config has no data.
    calibration: Callable[[], Iterator[Batch]] | None = None
    progress: Callable[[str], None] = field(default=lambda _msg: None)
    # Validation inputs (public names, batch axis first); None when the config has no validation data.
    # Passes that choose what to keep in float measure per-layer sensitivity on these.
    validation: Callable[[], Batch] | None = None
    # The build's fidelity gate for a candidate model of this target: loads it with the
    # target's backend, runs it on the validation data and compares with the original model
    # under the project's thresholds. None when the config has no validation data.
    gate: Callable[[ModelArtifact], Any] | None = None  # -> edgepack.fidelity.FidelityReport


class Pass(ABC):
    name: ClassVar[str]
    config_model: ClassVar[type[PassConfig]]
    accepts: ClassVar[frozenset[ModelFormat]]  # input formats this pass takes
    produces: ClassVar[ModelFormat]
    needs_calibration: ClassVar[bool] = False

    def parse_config(self, raw: dict[str, Any], where: str) -> PassConfig:
        try:
            return self.config_model.model_validate(raw)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{err['msg']}", where=f"{where}.{loc}" if loc else where) from e

    def requires_calibration(self, config: PassConfig) -> bool:
        """Whether this config needs calibration data (e.g. only int8 modes do)."""
        return self.needs_calibration

    def requires_validation(self, config: PassConfig) -> bool:
        """Whether this config uses ``ctx.validation``/``ctx.gate`` (accuracy-controlled modes do):
        its result then depends on the validation data and thresholds, and is cached by them."""
        return False

    @abstractmethod
    def run(self, model: ModelArtifact, config: PassConfig, ctx: PassContext) -> ModelArtifact: ...


# Name -> "module:Class". Modules are imported on first lookup, so the CLI starts fast.
_REGISTRY: dict[str, str] = {
    "tflite-convert": "edgepack.passes.tflite:TFLiteConvert",
    "onnx-convert": "edgepack.passes.onnx:OnnxConvert",
    "onnx-quantize": "edgepack.passes.onnx:OnnxQuantize",
    "onnx-float16": "edgepack.passes.onnx:OnnxFloat16",
    "openvino-convert": "edgepack.passes.openvino:OpenVinoConvert",
    "openvino-quantize": "edgepack.passes.openvino:OpenVinoQuantize",
}
_LOADED: dict[str, type[Pass]] = {}


def register(name: str, target: str) -> None:
    """Register a pass implementation given as ``module:Class``."""
    _REGISTRY[name] = target
    _LOADED.pop(name, None)


def unregister(name: str) -> None:
    """Remove a pass registered with ``register`` (tests, plug-ins being unloaded)."""
    _REGISTRY.pop(name, None)
    _LOADED.pop(name, None)


def known_passes() -> list[str]:
    return sorted(_REGISTRY)


def get_pass(name: str) -> Pass:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown pass {name!r}; known: {', '.join(known_passes())}")
    if name not in _LOADED:
        module_name, _, class_name = _REGISTRY[name].partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        _LOADED[name] = cls
    return _LOADED[name]()
