"""Keras models (``.keras`` archives and legacy ``.h5`` files), run with Keras itself."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.signature import IOSignature, TensorSpec
from .base import Batch
from .loader import NameMap, model_error
from .tf_env import import_keras, import_tensorflow


class KerasModelSource:
    """A Keras 3 functional or Sequential model.

    Input names come from ``model.inputs`` (``keras.Input(name=...)``), output names from
    the layers that produce ``model.outputs`` (``model.output_names``); both keep the
    model's order.
    """

    def __init__(
        self,
        path: Path,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
    ) -> None:
        keras = import_keras()
        tf = import_tensorflow()
        path = Path(path)
        if not path.is_file():
            raise model_error(path, "not a Keras model file")
        if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
            # Keras answers "File not found" for a damaged archive; say what is wrong instead.
            raise model_error(
                path, "not a valid .keras archive (a .keras file is a zip; damaged or truncated?)"
            )
        try:
            # compile=False: a reference model only predicts, and custom losses need not import.
            self._model = keras.saving.load_model(path, compile=False)
        except Exception as e:
            raise model_error(path, "cannot load the Keras model", e) from e
        native = _signature(self._model, path)
        self._names = NameMap.build(path, native, input_names, output_names)
        self.artifact = self._names.artifact(
            "keras",
            precision="fp32",
            details={
                "framework": "keras",
                "keras_version": keras.__version__,
                "keras_backend": keras.backend.backend(),
                "tensorflow_version": tf.__version__,
                "model_name": str(self._model.name),
                "file_format": "h5" if path.suffix.lower() in (".h5", ".hdf5") else "keras",
            },
        )

    @property
    def model(self) -> Any:
        """The loaded ``keras.Model`` (for passes that convert it)."""
        return self._model

    def predict(self, batch: Batch) -> Batch:
        """Run the model on one batch (public input names) and return public output names."""
        feeds = self._names.native_feeds(batch)
        try:
            # One input: the bare array (Sequential models take nothing else); several: by name,
            # which Keras matches whatever structure (list or dict) the model was built with.
            result = self._model.predict_on_batch(next(iter(feeds.values())) if len(feeds) == 1 else feeds)
        except Exception as e:
            raise model_error(self.artifact.path, "Keras prediction failed", e) from e
        names = self._names.native.output_names
        if isinstance(result, dict):
            outputs = {name: result[name] for name in names}
        else:
            arrays = [result] if len(names) == 1 and not isinstance(result, list | tuple) else list(result)
            outputs = dict(zip(names, arrays, strict=True))
        return self._names.outputs(outputs)


def _signature(model: Any, path: Path) -> IOSignature:
    try:
        inputs = list(model.inputs)
        outputs = list(model.outputs)
    except (AttributeError, TypeError, ValueError) as e:
        raise model_error(
            path, "the Keras model has no defined inputs (a subclassed model?); save a functional model", e
        ) from e
    if not inputs or not outputs:
        raise model_error(path, "the Keras model has no defined inputs or outputs; save a functional model")
    output_names = _unique(_output_names(model, outputs))
    return IOSignature(
        inputs=tuple(_spec(str(t.name), t) for t in inputs),
        outputs=tuple(_spec(name, t) for name, t in zip(output_names, outputs, strict=True)),
    )


def _output_names(model: Any, outputs: list[Any]) -> list[str]:
    names = getattr(model, "output_names", None)  # functional models; Sequential has none
    if names and len(names) == len(outputs):
        return [str(n) for n in names]
    # The layer that produced each output (what Functional.output_names reports too).
    names = []
    for i, tensor in enumerate(outputs):
        history = getattr(tensor, "_keras_history", None)
        operation = getattr(history, "operation", None)
        names.append(str(getattr(operation, "name", None) or f"output_{i}"))
    return names


def _spec(name: str, tensor: Any) -> TensorSpec:
    shape = tuple(None if d is None else int(d) for d in tensor.shape)
    return TensorSpec(name=name, dtype=np.dtype(str(tensor.dtype)).name, shape=shape)


def _unique(names: list[str]) -> list[str]:
    # Two outputs of one layer share its name; number them so every output stays addressable.
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if names.count(name) > 1:
            seen[name] = seen.get(name, -1) + 1
            name = f"{name}_{seen[name]}"
        out.append(name)
    return out
