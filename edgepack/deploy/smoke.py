"""Golden-input smoke test: the exact zip about to be deployed answers its recorded sample.

The sample recorded at build (``sample.npz``: inputs and the shipped model's outputs)
goes through the zip's own handler under the artifact's Python, as Lambda would run it
(``invoke.local``), as a direct event; every recorded output must come back within
``ATOL`` with the same top-1 class. For a layer-split function the local invoke mounts
the layer zip named in ``runtime.layer`` (beside the function zip) where Lambda would.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.sample import read_sample
from ..runtime.trust.public_keys import PublicKey
from .artifact import VerifiedZip
from .errors import SmokeTestError

# Same tolerance as the device health check: the recorded answer came from the build host.
ATOL = 1e-3


@dataclass(frozen=True)
class SmokeReport:
    outputs: tuple[str, ...]
    max_abs_error: float
    init_ms: float | None
    duration_ms: float


def _sample(artifact: VerifiedZip, workdir: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    section = artifact.manifest.get("sample")
    if not isinstance(section, dict) or not section.get("inputs") or not section.get("outputs"):
        raise SmokeTestError(f"{artifact.path}: the manifest records no sample to smoke-test with")
    file = str(section.get("file", "sample.npz"))
    with zipfile.ZipFile(artifact.path) as zf:
        try:
            (workdir / "sample.npz").write_bytes(zf.read(file))
        except KeyError as e:
            raise SmokeTestError(f"{artifact.path}: no {file} in the zip") from e
    return read_sample(workdir, {**section, "file": "sample.npz"})


def compare(recorded: dict[str, np.ndarray], response: Any) -> float:
    """The largest error over every recorded output; raises ``SmokeTestError`` listing every failure."""
    got_outputs = response.get("outputs") if isinstance(response, dict) else None
    if not isinstance(got_outputs, dict):
        raise SmokeTestError(f"the handler answered without outputs: {json.dumps(response)[:300]}")
    failures: list[str] = []
    worst = 0.0
    for name, expected_raw in recorded.items():
        expected = np.asarray(expected_raw, dtype=np.float64)
        if name not in got_outputs:
            failures.append(f"output {name!r} missing")
            continue
        got = np.asarray(got_outputs[name], dtype=np.float64)
        if got.shape != expected.shape:
            failures.append(f"output {name!r}: shape {got.shape}, recorded {expected.shape}")
            continue
        error = float(np.max(np.abs(got - expected))) if got.size else 0.0
        worst = max(worst, error)
        if not error <= ATOL:  # NaN fails too
            failures.append(f"output {name!r} differs from the recorded sample by {error:.3g} (> {ATOL})")
        elif got.ndim == 2 and got.shape[-1] > 1 and not np.array_equal(got.argmax(-1), expected.argmax(-1)):
            failures.append(f"output {name!r}: top-1 class differs from the recorded sample")
    if failures:
        raise SmokeTestError("smoke test failed: " + "; ".join(failures))
    return worst


def smoke_test(
    artifact: VerifiedZip,
    *,
    timeout_s: float | None = None,
    memory_mb: int | None = None,
    keys: Sequence[PublicKey] | None = None,
) -> SmokeReport:
    """Run the recorded sample through ``artifact``; raise ``SmokeTestError``
    unless every output matches. Returns the figures for the step line. With ``keys`` the
    zip is verified again by the reader that unpacks it, so what runs is what was verified."""
    from ..invoke.local import invoke_local

    function = artifact.manifest.get("function") or {}
    timeout = float(timeout_s or max(60, int(function.get("timeout_s", 10))))
    memory = int(memory_mb or function.get("memory_mb", 1024))
    with tempfile.TemporaryDirectory(prefix="edgepack-smoke-") as tmp:
        workdir = Path(tmp)
        inputs, recorded = _sample(artifact, workdir)
        event = {"inputs": {name: value.tolist() for name, value in inputs.items()}}
        result = invoke_local(
            artifact.path, event, timeout_s=timeout, memory_mb=memory, function_name=artifact.name, keys=keys
        )
    if result.init_error is not None:
        raise SmokeTestError(
            f"smoke test failed: init error {result.init_error.get('errorType')}: "
            f"{str(result.init_error.get('errorMessage', ''))[:300]}"
        )
    if result.error is not None:
        raise SmokeTestError(
            f"smoke test failed: {result.error.get('errorType')}: "
            f"{str(result.error.get('errorMessage', ''))[:300]}"
        )
    response = result.response
    if isinstance(response, dict) and isinstance(response.get("statusCode"), int):
        raise SmokeTestError(f"smoke test failed: the handler answered {json.dumps(response)[:300]}")
    worst = compare(recorded, response)
    return SmokeReport(tuple(recorded), worst, result.init_ms, result.duration_ms)
