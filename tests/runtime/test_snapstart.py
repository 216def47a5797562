"""SnapStart: the before-snapshot hook warms the real model on the artifact's recorded sample.

Lambda's python3.12+ runtime provides ``snapshot_restore_py``; here a stand-in with the same
two functions sits on ``sys.path``, records what is registered, and the test calls the hooks
the way Lambda would before taking the snapshot.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from runtime_helpers import Models

from edgepack.runtime.errors import InferenceError
from edgepack.runtime.lambda_adapter import create_handler
from edgepack.runtime.manifest import Manifest
from edgepack.runtime.predictor import Predictor
from edgepack.runtime.sample import write_sample
from edgepack.runtime.snapstart import SNAPSHOT_MODULE, register_snapstart_hooks, snapstart_enabled
from edgepack.runtime.telemetry import INFERENCE, Telemetry, TelemetryEvent

SAMPLE_BATCH = 3

FAKE_MODULE = textwrap.dedent(
    """
    # Stand-in for the module Lambda's Python runtime provides when SnapStart is on.
    before_snapshot = []
    after_restore = []

    def register_before_snapshot(func, *args, **kwargs):
        before_snapshot.append((func, args, kwargs))
        return func

    def register_after_restore(func, *args, **kwargs):
        after_restore.append((func, args, kwargs))
        return func
    """
)


@pytest.fixture
def snapshot_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The Lambda-provided ``snapshot_restore_py``, importable from ``sys.path``."""
    where = tmp_path / "lambda-runtime"
    where.mkdir()
    (where / f"{SNAPSHOT_MODULE}.py").write_text(FAKE_MODULE)
    monkeypatch.syspath_prepend(str(where))
    monkeypatch.delitem(sys.modules, SNAPSHOT_MODULE, raising=False)
    import snapshot_restore_py

    yield snapshot_restore_py
    sys.modules.pop(SNAPSHOT_MODULE, None)


def _artifact(src: Path, dest: Path, tflite_models: Models, *, snapstart: bool, sample: bool = True) -> Path:
    shutil.copytree(src, dest)
    manifest = json.loads((dest / "edgepack.json").read_text())
    if sample:
        images = tflite_models.images[:SAMPLE_BATCH]
        section = write_sample(dest / "sample.npz", {"image": images}, {"probabilities": np.zeros((3, 10))})
        manifest["sample"] = section
    manifest["function"] = {"name": None, "memory_mb": 1024, "timeout_s": 10, "snapstart": snapstart}
    (dest / "edgepack.json").write_text(json.dumps(manifest))
    return dest


def _recording_predictor(root: Path) -> tuple[Predictor, list[TelemetryEvent], list[dict[str, Any]]]:
    events: list[TelemetryEvent] = []
    calls: list[dict[str, Any]] = []
    predictor = Predictor.from_artifact(root, Telemetry([events.append]))
    real_predict = predictor.predict

    def predict(inputs: Any) -> dict[str, np.ndarray]:
        calls.append(dict(inputs))
        return real_predict(inputs)

    predictor.predict = predict  # type: ignore[method-assign]
    return predictor, events, calls


def test_before_snapshot_hook_runs_the_recorded_sample(
    snapshot_api: Any, int8_artifact: Path, tflite_models: Models, tmp_path: Path
) -> None:
    root = _artifact(int8_artifact, tmp_path / "a", tflite_models, snapstart=True)
    predictor, events, calls = _recording_predictor(root)
    manifest = Manifest.load(root)

    assert register_snapstart_hooks(predictor, root, manifest) is True
    assert len(snapshot_api.before_snapshot) == 1
    assert snapshot_api.after_restore == []  # the runtime keeps no random state to re-seed
    assert calls == []  # registered at init, run only when Lambda takes the snapshot

    hook, args, kwargs = snapshot_api.before_snapshot[0]
    hook(*args, **kwargs)
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0]["image"], tflite_models.images[:SAMPLE_BATCH])
    inference = [e for e in events if e.name == INFERENCE]
    assert len(inference) == 1 and inference[0].fields["batch_size"] == SAMPLE_BATCH


def test_handler_registers_the_warm_up_at_init(
    snapshot_api: Any,
    int8_artifact: Path,
    tflite_models: Models,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = _artifact(int8_artifact, tmp_path / "a", tflite_models, snapstart=True)
    handler = create_handler(root)
    assert len(snapshot_api.before_snapshot) == 1
    capsys.readouterr()

    hook, args, kwargs = snapshot_api.before_snapshot[0]
    hook(*args, **kwargs)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    inference = [line for line in lines if line.get("message") == INFERENCE]
    assert [line["telemetry"]["batch_size"] for line in inference] == [SAMPLE_BATCH]
    assert any(line.get("message") == "SnapStart: model warmed with the recorded sample" for line in lines)

    answer = handler({"inputs": {"image": tflite_models.images[:1].tolist()}}, None)  # still serves
    assert "outputs" in answer, answer


def test_nothing_registered_without_snapstart(
    snapshot_api: Any, int8_artifact: Path, tflite_models: Models, tmp_path: Path
) -> None:
    root = _artifact(int8_artifact, tmp_path / "a", tflite_models, snapstart=False)
    assert not snapstart_enabled(Manifest.load(root))
    create_handler(root)
    assert snapshot_api.before_snapshot == []


def test_nothing_registered_outside_lambda(
    int8_artifact: Path, tflite_models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, SNAPSHOT_MODULE, None)  # makes the import fail
    root = _artifact(int8_artifact, tmp_path / "a", tflite_models, snapstart=True)
    predictor, _, calls = _recording_predictor(root)
    assert register_snapstart_hooks(predictor, root, Manifest.load(root)) is False
    create_handler(root)  # local runs, containers: init goes on as before
    assert calls == []


def test_without_a_sample_the_hook_runs_nothing(
    snapshot_api: Any, int8_artifact: Path, tflite_models: Models, tmp_path: Path
) -> None:
    root = _artifact(int8_artifact, tmp_path / "a", tflite_models, snapstart=True, sample=False)
    predictor, _, calls = _recording_predictor(root)
    assert register_snapstart_hooks(predictor, root, Manifest.load(root)) is True
    hook, args, kwargs = snapshot_api.before_snapshot[0]
    hook(*args, **kwargs)
    assert calls == []


def test_a_sample_the_model_cannot_run_fails_the_snapshot(
    snapshot_api: Any, int8_artifact: Path, tflite_models: Models, tmp_path: Path
) -> None:
    """Lambda marks the version failed rather than publishing a snapshot of a broken model."""
    root = _artifact(int8_artifact, tmp_path / "a", tflite_models, snapstart=True)
    write_sample(
        root / "sample.npz", {"image": np.zeros((1, 3, 3, 1), np.float32)}, {"probabilities": np.zeros(1)}
    )
    predictor, _, _ = _recording_predictor(root)
    register_snapstart_hooks(predictor, root, Manifest.load(root))
    hook, args, kwargs = snapshot_api.before_snapshot[0]
    with pytest.raises(InferenceError, match="image"):
        hook(*args, **kwargs)
