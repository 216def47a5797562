"""Reading ``edgepack.json``: the part of the manifest the runtime needs.

The build side writes the full manifest (``edgepack/manifest.py``); the runtime reads
the sections below and keeps the rest as ``raw``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelLoadError
from .signature import IOSignature

MANIFEST_FILE = "edgepack.json"
ATTESTATION_FILE = "attestation.dsse.json"
MANIFEST_SCHEMA = "edgepack.manifest/v1"


@dataclass(frozen=True)
class ModelSection:
    file: str  # path relative to the artifact root
    format: str  # tflite | onnx | openvino
    sha256: str
    precision: str  # fp32 | fp16 | int8 | int16x8 | dynamic
    signature: IOSignature  # what callers see: the original model's names, float dtypes
    # Names of the same tensors inside the model file, aligned by position with
    # signature.inputs / signature.outputs (converters rename tensors). Empty = same names.
    native_inputs: tuple[str, ...] = ()
    native_outputs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "sha256": self.sha256,
            "precision": self.precision,
            "signature": self.signature.to_dict(),
            "native_inputs": list(self.native_inputs),
            "native_outputs": list(self.native_outputs),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSection:
        return cls(
            file=str(data["file"]),
            format=str(data["format"]),
            sha256=str(data["sha256"]),
            precision=str(data["precision"]),
            signature=IOSignature.from_dict(data["signature"]),
            native_inputs=tuple(data.get("native_inputs") or ()),
            native_outputs=tuple(data.get("native_outputs") or ()),
        )


@dataclass(frozen=True)
class RuntimeSection:
    backend: str  # litert | onnxruntime | openvino
    settings: dict[str, Any] = field(default_factory=dict)  # threads, EP chain, device, hints

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "settings": self.settings}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RuntimeSection:
        return cls(backend=str(data["backend"]), settings=dict(data.get("settings") or {}))


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    target: str
    model: ModelSection
    runtime: RuntimeSection
    hooks: str | None = None  # module name of the user's hooks, importable from the artifact root
    telemetry: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        if data.get("schema") != MANIFEST_SCHEMA:
            raise ModelLoadError(f"{MANIFEST_FILE}: unknown schema {data.get('schema')!r}")
        try:
            return cls(
                name=str(data["name"]),
                version=str(data["version"]),
                target=str(data["target"]["name"]),
                model=ModelSection.from_dict(data["model"]),
                runtime=RuntimeSection.from_dict(data["runtime"]),
                hooks=data.get("hooks"),
                telemetry=dict(data.get("telemetry") or {}),
                raw=data,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ModelLoadError(f"{MANIFEST_FILE}: missing or invalid field {e}") from e

    @classmethod
    def load(cls, root: Path) -> Manifest:
        path = Path(root) / MANIFEST_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{path}: cannot read manifest: {e}") from e
        return cls.from_dict(data)
