"""Shared fixtures: the sample project, its model and data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GLOG_minloglevel", "2")

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO_ROOT / "samples" / "digits"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The committed sample project (read-only: copy it before changing anything)."""
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def keras_model_path() -> Path:
    return SAMPLE_DIR / "model" / "digits.keras"


@pytest.fixture(scope="session")
def validation_npz() -> Path:
    return SAMPLE_DIR / "data" / "validation.npz"


@pytest.fixture(scope="session")
def calibration_npz() -> Path:
    return SAMPLE_DIR / "data" / "calibration.npz"


@pytest.fixture
def sample_project(tmp_path: Path) -> Path:
    """A writable copy of the sample project."""
    dest = tmp_path / "digits"
    shutil.copytree(SAMPLE_DIR, dest, ignore=shutil.ignore_patterns("keys", "__pycache__"))
    return dest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests share one build cache per session, never the user's ~/.cache/edgepack,
    unless EDGEPACK_CACHE_DIR is set on purpose (CI sets it to reuse vendored wheels)."""
    if "EDGEPACK_CACHE_DIR" not in os.environ:
        os.environ["EDGEPACK_CACHE_DIR"] = str(tmp_path_factory.mktemp("edgepack-cache"))


@pytest.fixture(scope="session")
def multi_io_keras_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny deterministic Keras model with two named inputs and two named outputs.

    Inputs, in this order: ``pixels`` float32 (None, 4, 4, 1) and ``meta`` float32 (None, 3).
    Outputs, in this order: ``class_probs`` float32 (None, 5) (softmax) and ``score``
    float32 (None, 1). Every input and output has its own shape, so a step that swaps
    names or order fails loudly. Weights come from seeded initializers (no global seed).
    """
    from typing import Any

    from edgepack.model.tf_env import import_keras

    keras = import_keras()

    def dense(units: int, seed: int, **kwargs: Any) -> Any:
        return keras.layers.Dense(
            units,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
            bias_initializer=keras.initializers.RandomUniform(-0.1, 0.1, seed=seed + 100),
            **kwargs,
        )

    pixels = keras.Input(shape=(4, 4, 1), name="pixels")
    meta = keras.Input(shape=(3,), name="meta")
    x = keras.layers.Concatenate()([keras.layers.Flatten()(pixels), meta])
    x = dense(8, 1, activation="relu")(x)
    class_probs = dense(5, 2, activation="softmax", name="class_probs")(x)
    score = dense(1, 3, name="score")(x)
    model = keras.Model([pixels, meta], [class_probs, score], name="multi_io")
    path = tmp_path_factory.mktemp("multi_io") / "multi_io.keras"
    model.save(path)
    return path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: a skip for a missing tool means .ci/run must install it."""
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and session.exitstatus == 0:
        for report in skipped:
            print(f"\nCI: skipped, which CI counts as a failure: {report.nodeid}: {report.longrepr}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# Container fixtures (debian_base_image, podman) and moto's server (moto_url, aws_env) for every
# test module: one server per session, its state reset by each aws_env.
from tests.container_fixtures import debian_base_image, podman  # noqa: E402, F401
from tests.moto_fixtures import aws_env, moto_url  # noqa: E402, F401
