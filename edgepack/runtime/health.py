"""Health check: load the artifact's model and compare its answer to the one recorded at build.

Devices run it after unpacking a new version and before switching to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InferenceError
from .manifest import Manifest
from .predictor import Predictor
from .sample import read_sample

# The recorded output came from the same model on the build host; another CPU may round
# differently, so compare with a tolerance and require the same top-1 class.
ATOL = 1e-3


@dataclass(frozen=True)
class HealthReport:
    ok: bool
    max_abs_error: float
    reason: str = ""


def health_check(root: Path) -> HealthReport:
    """Never raises for a bad model: a failure is a report with ``ok=False`` and the reason."""
    try:
        manifest = Manifest.load(root)
        section = manifest.raw.get("sample") or {}
        if not section.get("inputs"):
            return HealthReport(False, float("inf"), "the manifest records no sample input")
        inputs, recorded_outputs = read_sample(root, section)
        predictor = Predictor.from_artifact(root)
        outputs = predictor.predict(inputs)
    except InferenceError as e:
        return HealthReport(False, float("inf"), e.message)
    except Exception as e:  # a crash while loading or running is exactly what this guards
        return HealthReport(False, float("inf"), f"{type(e).__name__}: {e}")
    worst = 0.0
    for name, recorded in recorded_outputs.items():
        expected = np.asarray(recorded, dtype=np.float64)
        got = np.asarray(outputs.get(name), dtype=np.float64)
        if got.shape != expected.shape:
            return HealthReport(
                False, float("inf"), f"output {name!r}: shape {got.shape}, recorded {expected.shape}"
            )
        error = float(np.max(np.abs(got - expected))) if got.size else 0.0
        worst = max(worst, error)
        if error > ATOL:
            return HealthReport(
                False, worst, f"output {name!r} differs from the recorded sample by {error:.3g}"
            )
        if got.ndim == 2 and got.shape[-1] > 1 and not np.array_equal(got.argmax(-1), expected.argmax(-1)):
            return HealthReport(
                False, worst, f"output {name!r}: top-1 class differs from the recorded sample"
            )
    return HealthReport(True, worst)
