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
