"""Load a trained model from disk as a ``ModelSource``: the reference every target is checked against.

One module per format (``keras``, ``savedmodel``, ``onnx``, ``tflite``), imported only when
its format is loaded. This module infers the format, applies the config's renames and
holds what the format modules share: the public/native name map and one-line errors.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, ModelError
from ..runtime.signature import IOSignature, TensorSpec
from .base import Batch, ModelArtifact, ModelFormat, ModelSource, Precision

# format -> (module, class) implementing it; imported lazily so that `edgepack --help` starts fast
_SOURCES: dict[str, tuple[str, str]] = {
    "keras": (".keras", "KerasModelSource"),
    "savedmodel": (".savedmodel", "SavedModelSource"),
    "onnx": (".onnx", "OnnxModelSource"),
    "tflite": (".tflite", "TFLiteModelSource"),
}
_SUFFIXES = {".keras": "keras", ".h5": "keras", ".hdf5": "keras", ".onnx": "onnx", ".tflite": "tflite"}
_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


def load_model(
    path: Path | str,
    fmt: str | None = None,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
) -> ModelSource:
    """Load the model at ``path`` with its own framework.

    ``fmt`` is one of keras, savedmodel, onnx, tflite; inferred from the path when omitted
    (``.keras``/``.h5`` -> keras, a directory holding ``saved_model.pb`` -> savedmodel,
    ``.onnx``, ``.tflite``). ``input_names``/``output_names`` (the config's ``model.inputs`` /
    ``model.outputs``) rename the model's tensors by position; the model's own names are kept
    in ``artifact.native_inputs``/``native_outputs``.

    Raises ``ModelError`` naming the file when it is missing, unreadable or of no known
    format, and ``ConfigError`` when the renames do not fit the model.
    """
    path = Path(path)
    if fmt is not None and fmt not in _SOURCES:
        raise ModelError(f"{path}: unknown model format {fmt!r}; expected one of {', '.join(_SOURCES)}")
    if path.name in _SAVED_MODEL_FILES and fmt in (None, "savedmodel"):
        path = path.parent  # pointing at the SavedModel's .pb means its directory
    if not path.exists():
        raise ModelError(f"model file not found: {path}")
    fmt = fmt or infer_format(path)
    for file in [path / n for n in _SAVED_MODEL_FILES] if path.is_dir() else [path]:
        if file.is_file() and file.stat().st_size == 0:
            raise ModelError(f"{file}: the file is empty")
    module_name, class_name = _SOURCES[fmt]
    cls = getattr(importlib.import_module(module_name, __package__), class_name)
    source: ModelSource = cls(path, input_names=input_names, output_names=output_names)
    return source


def infer_format(path: Path) -> str:
    """The model format the path's name or layout says, or a ``ModelError`` naming the file."""
    if path.is_dir():
        if any((path / name).is_file() for name in _SAVED_MODEL_FILES):
            return "savedmodel"
        raise ModelError(f"{path}: directory is not a TensorFlow SavedModel (no saved_model.pb in it)")
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        shown = f"extension {path.suffix!r}" if path.suffix else "no extension"
        raise ModelError(
            f"{path}: cannot tell the model format from its {shown}; expected .keras, .h5, .onnx, "
            ".tflite or a SavedModel directory (or set model.format)"
        )
    return fmt


def brief(e: BaseException, limit: int = 200) -> str:
    """A framework error cut to one short line (frameworks like to print pages)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = " ".join(lines[0].split()) if lines else ""
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    name = type(e).__name__
    return f"{name}: {text}" if text else name


def model_error(path: Path, what: str, cause: BaseException | None = None) -> ModelError:
    """``ModelError`` "<file>: <what> (<cause in one line>)"; raise it ``from`` the cause."""
    tail = f" ({brief(cause)})" if cause is not None else ""
    return ModelError(f"{path}: {what}{tail}")


@dataclasses.dataclass(frozen=True)
class NameMap:
    """The model's own IO (native names, in the model's order) and the public signature.

    ``public`` is what callers see: the native specs renamed positionally by the config and
    with the dtypes callers feed (a format may widen quantized IO to float32 before this).
    """

    path: Path
    native: IOSignature
    public: IOSignature

    @classmethod
    def build(
        cls,
        path: Path,
        native: IOSignature,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
        public_dtypes: Mapping[str, str] | None = None,
    ) -> NameMap:
        """Rename ``native`` positionally; ``public_dtypes`` maps native names to the dtype callers use."""
        dtypes = dict(public_dtypes or {})
        inputs = _renamed(path, native.inputs, input_names, "inputs", dtypes)
        outputs = _renamed(path, native.outputs, output_names, "outputs", dtypes)
        return cls(path=path, native=native, public=IOSignature(inputs=inputs, outputs=outputs))

    @property
    def native_inputs(self) -> tuple[str, ...]:
        """For ``ModelArtifact.native_inputs``: empty when the file uses the public names."""
        names = self.native.input_names
        return () if names == self.public.input_names else names

    @property
    def native_outputs(self) -> tuple[str, ...]:
        names = self.native.output_names
        return () if names == self.public.output_names else names

    def feeds(self, batch: Mapping[str, np.ndarray]) -> list[tuple[TensorSpec, TensorSpec, np.ndarray]]:
        """(public spec, native spec, array) per input in model order; the batch uses public names."""
        missing = [n for n in self.public.input_names if n not in batch]
        unknown = [n for n in batch if n not in self.public.input_names]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown {', '.join(unknown)}")
            raise DataError(
                f"{self.path}: inputs do not fit the model ({'; '.join(parts)}); "
                f"it takes {', '.join(self.public.input_names)}"
            )
        return [
            (pub, nat, np.asarray(batch[pub.name]))
            for pub, nat in zip(self.public.inputs, self.native.inputs, strict=True)
        ]

    def native_feeds(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The batch (public names) as the model takes it: native names, native dtypes, model order."""
        return {nat.name: arr.astype(nat.dtype, copy=False) for _, nat, arr in self.feeds(batch)}

    def outputs(self, native_outputs: Mapping[str, np.ndarray]) -> Batch:
        """Native output name -> array, to public name -> array in model order."""
        return {
            pub.name: np.asarray(native_outputs[nat.name])
            for pub, nat in zip(self.public.outputs, self.native.outputs, strict=True)
        }

    def artifact(
        self, fmt: ModelFormat, *, precision: Precision, details: Mapping[str, Any]
    ) -> ModelArtifact:
        """The source's ``ModelArtifact``: this file, the public signature, native names where they differ."""
        return ModelArtifact(
            path=self.path,
            format=fmt,
            signature=self.public,
            precision=precision,
            native_inputs=self.native_inputs,
            native_outputs=self.native_outputs,
            details=details,
        )


def _renamed(
    path: Path,
    specs: tuple[TensorSpec, ...],
    names: Sequence[str] | None,
    kind: str,
    dtypes: Mapping[str, str],
) -> tuple[TensorSpec, ...]:
    if names is None:
        names = [s.name for s in specs]
    elif len(names) != len(specs):
        raise ConfigError(
            f"lists {len(names)} name(s) but {path.name} has {len(specs)} {kind} "
            f"({', '.join(s.name for s in specs)})",
            where=f"model.{kind}",
        )
    duplicates = sorted({n for n in names if list(names).count(n) > 1})
    if duplicates:
        raise ConfigError(
            f"{kind} names must be unique: {', '.join(duplicates)} repeated", where=f"model.{kind}"
        )
    return tuple(
        dataclasses.replace(spec, name=name, dtype=dtypes.get(spec.name, spec.dtype), quantization=None)
        for spec, name in zip(specs, names, strict=True)
    )
