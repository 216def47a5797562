"""Lambda SnapStart: warm the model before Lambda takes the snapshot.

With SnapStart (``function.snapstart`` in the manifest, Lambda's python3.12 and newer),
Lambda runs the init phase once when a version is published, snapshots the memory, and
later resumes execution environments from that snapshot. Whatever the model does lazily
on its first run (tensor allocation, kernel selection, delegate setup, page faults on the
mapped file) would otherwise happen again in every restored environment's first request.
So before the snapshot, the model runs the artifact's recorded sample once.

Lambda's Python runtime provides the hook API as the module ``snapshot_restore_py``
(``register_before_snapshot(fn)``, ``register_after_restore(fn)``); outside Lambda, or
without SnapStart, nothing is registered. No after-restore hook: the runtime keeps no
random state and no unique id that a restored copy would share with its siblings (user
hooks that do must re-seed in their own code).

A warm-up that fails raises out of the hook: Lambda then marks the version as failed
instead of publishing a snapshot of a model that cannot run its own sample.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .manifest import Manifest
from .predictor import Predictor
from .sample import read_sample

SNAPSHOT_MODULE = "snapshot_restore_py"


def snapstart_enabled(manifest: Manifest) -> bool:
    """Whether the manifest asks for SnapStart (``function.snapstart``)."""
    function = manifest.raw.get("function")
    return isinstance(function, Mapping) and function.get("snapstart") is True


def warm_up(predictor: Predictor, root: Path, manifest: Manifest) -> bool:
    """Run the artifact's recorded sample inputs through ``predictor`` once.

    Returns ``False`` (and runs nothing) when the manifest records no sample.
    """
    section = manifest.raw.get("sample")
    if not isinstance(section, Mapping) or not section.get("inputs"):
        return False
    inputs, _ = read_sample(Path(root), section)
    predictor.predict(inputs)
    return True


def register_snapstart_hooks(
    predictor: Predictor, root: Path, manifest: Manifest, *, log: Callable[[str], Any] | None = None
) -> bool:
    """Register the before-snapshot warm-up when SnapStart is on and Lambda provides the API.

    Returns whether a hook was registered. Call it after the model has loaded (init phase).
    """
    if not snapstart_enabled(manifest):
        return False
    try:
        snapshot = importlib.import_module(SNAPSHOT_MODULE)
    except ImportError:
        return False  # not on Lambda (local runs, containers, devices)

    def before_snapshot() -> None:
        warmed = warm_up(predictor, root, manifest)
        if log is not None:
            log("SnapStart: model warmed with the recorded sample" if warmed else "SnapStart: no sample")

    snapshot.register_before_snapshot(before_snapshot)
    return True
