"""The contract every backend meets."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..signature import IOSignature


class Backend(Protocol):
    """A loaded model ready to run.

    ``signature`` is the model's own IO as the backend sees it (real dtypes, e.g. int8
    with its quantization). ``run`` takes and returns arrays in exactly those dtypes;
    converting user input (float -> int8 with the model's scale and zero point) is the
    Predictor's job, not the backend's.
    """

    name: str
    signature: IOSignature

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def describe(self) -> dict[str, Any]:
        """What actually runs: library version, device/provider chosen, settings applied."""
        ...
