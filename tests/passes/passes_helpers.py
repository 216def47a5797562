"""Helpers the pass tests share: running one pass, and the sample's gate."""

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
    """``run_pass(name, model, config, work, calibration=None, validation=None, gate=None)``:
    runs one pass for ``target``, with the validation data and gate accuracy control uses."""

    def run_pass(
        name: str,
        model: ModelArtifact,
        config: dict[str, Any],
        work: Path,
        calibration: Callable[[], Iterator[Batch]] | None = None,
        validation: Batch | None = None,
        gate: Callable[[ModelArtifact], FidelityReport] | None = None,
    ) -> ModelArtifact:
        p = get_pass(name)
        work.mkdir(parents=True, exist_ok=True)
        ctx = PassContext(
            work_dir=work,
            target=target,
            calibration=calibration,
            validation=(lambda: validation) if validation is not None else None,
            gate=gate,
        )
        return p.run(model, p.parse_config(config, name), ctx)

    return run_pass


def gate(reference: Batch, candidate: Batch, labels: np.ndarray) -> FidelityReport:
    return evaluate(reference, candidate, labels, GATE)
