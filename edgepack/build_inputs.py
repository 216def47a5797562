"""What every target of one build shares, loaded once: the project, the original model, its
data and answers on the validation set, the signer and the cache."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .cache import BuildCache
from .config import Project
from .model.base import Batch, ModelSource

Progress = Callable[[str], None]


@dataclass
class BuildInputs:
    project: Project
    source: ModelSource
    model_sha256: str
    calibration: Any  # edgepack.data.Dataset | None
    validation: Any  # edgepack.data.Dataset | None
    reference_outputs: Batch | None
    signer: Any
    cache: BuildCache
    epoch: int
    progress: Progress
    tools: dict[str, str]
    base_image: Any = None  # container_base.BaseImage for container targets, when given
