"""Model IO signature: names, dtypes, shapes (``None`` = dynamic) and quantization.

Shared by the build side (model sources, passes, manifest) and the runtime (request
validation), so it is plain dataclasses serialisable to JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# numpy dtype name -> Open Inference Protocol (KServe v2) datatype
OIP_DATATYPES: dict[str, str] = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "object": "BYTES",
}
NUMPY_DTYPES: dict[str, str] = {v: k for k, v in OIP_DATATYPES.items()}


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: real = scale * (q - zero_point)."""

    scale: float
    zero_point: int

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "zero_point": self.zero_point}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Quantization:
        return cls(scale=float(data["scale"]), zero_point=int(data["zero_point"]))


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name, e.g. "float32", "int8"
    shape: tuple[int | None, ...]  # None marks a dynamic axis (usually the batch)
    quantization: Quantization | None = None

    @property
    def dynamic_axes(self) -> tuple[int, ...]:
        return tuple(i for i, d in enumerate(self.shape) if d is None)

    @property
    def oip_datatype(self) -> str:
        return OIP_DATATYPES.get(self.dtype, self.dtype.upper())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.quantization is not None:
            out["quantization"] = self.quantization.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        q = data.get("quantization")
        return cls(
            name=str(data["name"]),
            dtype=str(data["dtype"]),
            shape=tuple(None if d is None else int(d) for d in data["shape"]),
            quantization=Quantization.from_dict(q) if q else None,
        )


@dataclass(frozen=True)
class IOSignature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = field(default_factory=tuple)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IOSignature:
        return cls(
            inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in data.get("outputs", [])),
        )
