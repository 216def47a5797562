"""Typed results that flow between model sources and passes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from ..runtime.signature import IOSignature

ModelFormat = Literal["keras", "savedmodel", "onnx", "tflite", "openvino"]
Precision = Literal["fp32", "fp16", "int8", "int16x8", "dynamic"]

Batch = dict[str, np.ndarray]  # input or output name -> array with a leading batch axis


@dataclass(frozen=True)
class ModelArtifact:
    """A model on disk: a file (``.keras``, ``.onnx``, ``.tflite``, ``.xml``) or a SavedModel dir.

    For OpenVINO IR ``path`` is the ``.xml``; its ``.bin`` sits beside it.
    """

    path: Path
    format: ModelFormat
    signature: IOSignature  # public: the original model's names (after config renames), float dtypes
    precision: Precision = "fp32"
    # Names of the same tensors inside this model file, aligned by position with
    # signature.inputs / signature.outputs. Empty = the file uses the public names.
    native_inputs: tuple[str, ...] = ()
    native_outputs: tuple[str, ...] = ()
    # Free-form facts a pass wants recorded in the manifest (quantization scheme, opset...).
    details: Mapping[str, Any] = field(default_factory=dict)

    def files(self) -> list[Path]:
        """Every file that makes up the model (for hashing and packaging)."""
        if self.path.is_dir():
            return sorted(p for p in self.path.rglob("*") if p.is_file())
        if self.format == "openvino":
            return [self.path, self.path.with_suffix(".bin")]
        return [self.path]


class ModelSource(Protocol):
    """A loaded original model: the reference every optimized model is checked against."""

    artifact: ModelArtifact

    def predict(self, batch: Batch) -> Batch:
        """Run the original model with its own framework; names follow ``artifact.signature``."""
        ...
