"""The health-check sample: one input and the shipped model's answer, in a file of its own.

Kept out of the manifest: a 224x224x3 image as JSON is megabytes that every Lambda init
would parse. The file is an ``.npz`` (exact float values, numpy reads it without pickle)
written deterministically, with arrays keyed by position (``input_0``, ``output_0``...);
the manifest's ``sample`` section names them in order and carries the file's sha256.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_FILE = "sample.npz"
_EPOCH_DATE = (1980, 1, 1, 0, 0, 0)


def write_sample(
    path: Path, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """Write ``path`` and return the manifest's ``sample`` section (without the digest)."""
    arrays = {f"input_{i}": v for i, v in enumerate(inputs.values())}
    arrays.update({f"output_{i}": v for i, v in enumerate(outputs.values())})
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(value), allow_pickle=False)
            # Fixed timestamps and modes: same sample, same bytes (reproducible builds).
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())
    return {"file": path.name, "inputs": list(inputs), "outputs": list(outputs)}


def read_sample(
    root: Path, section: Mapping[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The recorded inputs and outputs, by name, from the artifact rooted at ``root``."""
    with np.load(root / str(section.get("file", SAMPLE_FILE)), allow_pickle=False) as data:
        inputs = {name: data[f"input_{i}"] for i, name in enumerate(section.get("inputs", []))}
        outputs = {name: data[f"output_{i}"] for i, name in enumerate(section.get("outputs", []))}
    return inputs, outputs
