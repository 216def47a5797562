"""Helpers the ONNX and OpenVINO pass tests share: running one pass, and the sample's gate."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgepack.config import Thresholds
from edgepack.fidelity import FidelityReport, evaluate
from edgepack.model.base import Batch, ModelArtifact
from edgepack.passes import PassContext, get_pass

# The gate the sample project ships with (samples/digits/edgepack.yaml).
GATE = Thresholds(min_top1_agreement=0.98, max_accuracy_drop=0.01, min_cosine_similarity=0.99)


def pass_runner(target: str) -> Callable[..., ModelArtifact]:
    """``run_pass(name, model, config, work, calibration=None)``: runs one pass for ``target``."""

    def run_pass(
        name: str,
        model: ModelArtifact,
        config: dict[str, Any],
        work: Path,
        calibration: Callable[[], Iterator[Batch]] | None = None,
    ) -> ModelArtifact:
        p = get_pass(name)
        work.mkdir(parents=True, exist_ok=True)
        return p.run(
            model,
            p.parse_config(config, name),
            PassContext(work_dir=work, target=target, calibration=calibration),
        )

    return run_pass


def gate(reference: Batch, candidate: Batch, labels: np.ndarray) -> FidelityReport:
    return evaluate(reference, candidate, labels, GATE)
