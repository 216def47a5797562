"""TensorFlow SavedModel directories, run through their serving signature."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.signature import IOSignature, TensorSpec
from .base import Batch
from .loader import NameMap, model_error
from .tf_env import import_tensorflow

SERVING_SIGNATURE = "serving_default"
_POSITIONAL = re.compile(r"^(.*)_(\d+)$")


class SavedModelSource:
    """A SavedModel (e.g. from ``keras.Model.export``); IO is its ``serving_default`` signature.

    Names are the signature's keys. A signature is a map, so its order is not stored
    (loading lists keys alphabetically); the order is taken, in turn, from an endpoint
    that takes the same tensors positionally (a Keras export's ``serve``), from positional
    names (``output_0``, ``output_1``... a Keras export's outputs; rename them with
    ``model.outputs``), else alphabetical. A SavedModel with a single signature of another
    name uses that one.
    """

    def __init__(
        self,
        path: Path,
        input_names: Sequence[str] | None = None,
        output_names: Sequence[str] | None = None,
    ) -> None:
        tf = import_tensorflow()
        path = Path(path)
        if not path.is_dir():
            raise model_error(path, "a SavedModel is a directory holding saved_model.pb")
        try:
            self._loaded = tf.saved_model.load(str(path))
        except Exception as e:
            raise model_error(path, "cannot load the SavedModel", e) from e
        signatures = dict(self._loaded.signatures)
        if SERVING_SIGNATURE in signatures:
            key = SERVING_SIGNATURE
        elif len(signatures) == 1:
            key = next(iter(signatures))
        else:
            shown = ", ".join(sorted(signatures)) or "none"
            raise model_error(path, f"the SavedModel has no {SERVING_SIGNATURE!r} signature (has: {shown})")
        self._function = signatures[key]
        native = _signature(self._function, path, _positional_order(self._loaded))
        self._names = NameMap.build(path, native, input_names, output_names)
        self.artifact = self._names.artifact(
            "savedmodel",
            precision="fp32",
            details={
                "framework": "tensorflow",
                "tensorflow_version": tf.__version__,
                "signature": key,
                "signatures": sorted(signatures),
            },
        )

    def predict(self, batch: Batch) -> Batch:
        """Run the serving signature on one batch (public names in and out)."""
        tf = import_tensorflow()
        feeds = {name: tf.constant(arr) for name, arr in self._names.native_feeds(batch).items()}
        try:
            result = self._function(**feeds)
        except Exception as e:
            raise model_error(self.artifact.path, "SavedModel prediction failed", e) from e
        return self._names.outputs({name: tensor.numpy() for name, tensor in result.items()})


def _signature(function: Any, path: Path, endpoint_orders: list[list[str]]) -> IOSignature:
    _, kwargs = function.structured_input_signature
    outputs = function.structured_outputs
    if not isinstance(outputs, dict):  # signatures always return dicts; guard against odd exports
        raise model_error(path, "the serving signature does not return named outputs")
    input_order = next((o for o in endpoint_orders if sorted(o) == sorted(kwargs)), None)
    return IOSignature(
        inputs=tuple(_spec(path, name, kwargs[name]) for name in input_order or _ordered(kwargs)),
        outputs=tuple(_spec(path, name, outputs[name]) for name in _ordered(outputs)),
    )


def _ordered(names: Iterable[str]) -> list[str]:
    """``output_0, output_1, ..., output_10`` by number when every name is positional, else sorted."""
    names = list(names)
    positions = [_POSITIONAL.match(n) for n in names]
    if all(positions):
        return [
            n for _, n in sorted((int(m.group(2)), n) for m, n in zip(positions, names, strict=True) if m)
        ]
    return sorted(names)


def _positional_order(loaded: Any) -> list[list[str]]:
    """Input names, in order, of every endpoint that takes named tensors positionally."""
    tf = import_tensorflow()
    orders: list[list[str]] = []
    names = sorted((n for n in dir(loaded) if not n.startswith("_")), key=lambda n: (n != "serve", n))
    for name in names:
        try:
            concrete = getattr(loaded, name).concrete_functions
        except Exception:  # not a function, or one without traced signatures
            continue
        for function in concrete:
            args, _ = function.structured_input_signature
            specs = tf.nest.flatten(args)
            if specs and all(isinstance(s, tf.TensorSpec) and s.name for s in specs):
                orders.append([str(s.name) for s in specs])
    return orders


def _spec(path: Path, name: str, spec: Any) -> TensorSpec:
    if spec.shape.rank is None:
        raise model_error(path, f"tensor {name!r} of the serving signature has an unknown rank")
    dtype = np.dtype(spec.dtype.as_numpy_dtype).name
    return TensorSpec(name=str(name), dtype=dtype, shape=tuple(spec.shape.as_list()))
