"""Helpers for the runtime tests: artifact directories around real TFLite models."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgepack.render import render_template_set
from edgepack.resources import runtime_package_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO_ROOT / "samples" / "digits"
EVENTS_DIR = SAMPLE_DIR / "events"
HOOKS_MODULE = "edgepack_user_hooks"

RENDER_CONTEXT = {
    "edgepack_version": "0.1.0",
    "project_name": "digits",
    "project_version": "1.0.0",
    "target_name": "lambda-x86_64",
}

PUBLIC_SIGNATURE = {
    "inputs": [{"name": "image", "dtype": "float32", "shape": [None, 8, 8, 1]}],
    "outputs": [{"name": "probabilities", "dtype": "float32", "shape": [None, 10]}],
}


@dataclass(frozen=True)
class Models:
    """TFLite conversions of the sample's Keras model and what Keras answers."""

    fp32: Path  # dynamic batch, float IO
    int8: Path  # full-integer, int8 IO
    fixed1: Path  # float, batch fixed at 1 (a Reshape bakes the batch in)
    pair: Path  # two float inputs a (None, 2), b (None, 3) -> sum(a) + 10 * sum(b)
    images: np.ndarray  # validation images, float32 (500, 8, 8, 1)
    labels: np.ndarray
    reference: np.ndarray  # Keras probabilities for ``images``


def load_event(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    return data


def write_artifact(
    dest: Path,
    model: Path,
    *,
    precision: str,
    native_outputs: tuple[str, ...] = ("output_0",),
    hooks: Path | None = None,
    telemetry: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
) -> Path:
    """An artifact directory laid out as ARCHITECTURE.md says (no vendored packages)."""
    dest.mkdir(parents=True)
    (dest / "model").mkdir()
    shutil.copyfile(model, dest / "model" / "model.tflite")
    shutil.copytree(
        runtime_package_dir(), dest / "edgepack_runtime", ignore=shutil.ignore_patterns("__pycache__")
    )
    if hooks is not None:
        shutil.copyfile(hooks, dest / f"{HOOKS_MODULE}.py")
    data = (dest / "model" / "model.tflite").read_bytes()
    manifest = {
        "schema": "edgepack.manifest/v1",
        "name": "digits",
        "version": "1.0.0",
        "target": {"name": "lambda-x86_64", "kind": "lambda", "arch": "x86_64", "python": "3.12"},
        "model": {
            "file": "model/model.tflite",
            "format": "tflite",
            "sha256": hashlib.sha256(data).hexdigest(),
            "precision": precision,
            "signature": PUBLIC_SIGNATURE,
            "native_inputs": ["image"],
            "native_outputs": list(native_outputs),
            "size_bytes": len(data),
        },
        "runtime": {
            "backend": "litert",
            "settings": settings or {"threads": 1},
            "entrypoint": "handler.handler",
        },
        "hooks": HOOKS_MODULE if hooks is not None else None,
        "telemetry": telemetry or {"enabled": True, "namespace": "edgepack/digits", "service": "digits"},
        "build": {"built_at": "2026-11-23T00:00:00Z", "edgepack_version": "0.1.0"},
    }
    (dest / "edgepack.json").write_text(json.dumps(manifest, indent=1))
    render_template_set("lambda", dest, RENDER_CONTEXT)
    return dest


def top1_agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.argmax(a, axis=-1) == np.argmax(b, axis=-1)))
