"""Running a model file with edgepack's own runtime on the build host (fidelity, load checks,
samples, reports): the same Predictor and backend an artifact uses."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .model.base import Batch, ModelArtifact
from .runtime.signature import IOSignature

if TYPE_CHECKING:
    from .runtime.predictor import Predictor

_BATCH = 64


def host_predictor(
    backend: str,
    model_path: Path,
    settings: Mapping[str, Any],
    signature: IOSignature,
    native_inputs: tuple[str, ...] = (),
    native_outputs: tuple[str, ...] = (),
) -> Predictor:
    """The runtime's Predictor for a model file on the build host.

    The target's own runtime settings, minus ``cache_dir``: an on-device cache location
    that only makes sense inside an installed artifact."""
    from .runtime.backends import load_backend
    from .runtime.predictor import Predictor

    host_settings = {k: v for k, v in settings.items() if k != "cache_dir"}
    return Predictor(
        load_backend(backend, model_path, host_settings),
        signature,
        native_inputs=native_inputs,
        native_outputs=native_outputs,
    )


def artifact_predictor(backend: str, model: ModelArtifact, settings: Mapping[str, Any]) -> Predictor:
    return host_predictor(
        backend, model.path, settings, model.signature, model.native_inputs, model.native_outputs
    )


def predict_batched(predict: Callable[[Batch], Batch], inputs: Batch) -> Batch:
    n = len(next(iter(inputs.values())))
    chunks: list[Batch] = []
    for start in range(0, n, _BATCH):
        chunks.append(predict({k: v[start : start + _BATCH] for k, v in inputs.items()}))
    return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}


def first_sample(data: Any, signature: IOSignature) -> Batch:
    """One input: the first sample of ``data`` (a Dataset), else zeros shaped by the signature."""
    if data is not None:
        return {k: v[:1] for k, v in data.inputs.items()}
    return {
        t.name: np.zeros(tuple(1 if d is None else d for d in t.shape) or (1,), dtype=t.dtype)
        for t in signature.inputs
    }
