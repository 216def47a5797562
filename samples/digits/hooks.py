"""User hooks for the digits sample, packaged into every artifact.

Every function is optional. ``postprocess`` adds the predicted class to the response.
"""

from __future__ import annotations

import numpy as np


def postprocess(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    outputs["label"] = np.argmax(outputs["probabilities"], axis=-1).astype(np.int64)
    return outputs
