"""User hooks load from the artifact root; a broken module is a ModelLoadError naming it."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgepack.runtime.errors import ModelLoadError
from edgepack.runtime.hooks import Hooks, load_hooks


def _write(root: Path, name: str, source: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return root


def test_no_module_means_no_hooks(tmp_path: Path) -> None:
    assert load_hooks(None, tmp_path) == Hooks()


def test_sample_hooks_postprocess_adds_label(tmp_path: Path, sample_dir: Path) -> None:
    shutil.copyfile(sample_dir / "hooks.py", tmp_path / "edgepack_user_hooks.py")
    hooks = load_hooks("edgepack_user_hooks", tmp_path)
    assert hooks.module == "edgepack_user_hooks"
    assert hooks.preprocess is None and hooks.on_event is None and hooks.postprocess is not None
    out = hooks.postprocess({"probabilities": np.array([[0.1, 0.9], [0.8, 0.2]])})
    assert out["label"].tolist() == [1, 0]


def test_each_root_gets_its_own_module_of_the_same_name(tmp_path: Path) -> None:
    one = _write(tmp_path / "one", "h", "def postprocess(o):\n    return {'from': 1}\n")
    two = _write(tmp_path / "two", "h", "def postprocess(o):\n    return {'from': 2}\n")
    first, second = load_hooks("h", one), load_hooks("h", two)
    assert first.postprocess is not None and second.postprocess is not None
    assert first.postprocess({}) == {"from": 1} and second.postprocess({}) == {"from": 2}


def test_package_submodule(tmp_path: Path) -> None:
    _write(tmp_path / "pkg", "__init__", "")
    _write(tmp_path / "pkg", "user", "def preprocess(i):\n    return i\n")
    assert load_hooks("pkg.user", tmp_path).preprocess is not None


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("def postprocess(o:\n", "'broken_hooks' .*failed to import: SyntaxError"),
        ("import not_a_module_anywhere\n", "failed to import: ModuleNotFoundError"),
        ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
        ("postprocess = 42\n", "'postprocess' is a int, not a function"),
    ],
    ids=["syntax", "import", "raises", "not-callable"],
)
def test_broken_module_is_a_model_load_error_naming_it(tmp_path: Path, source: str, match: str) -> None:
    _write(tmp_path, "broken_hooks", source)
    with pytest.raises(ModelLoadError, match=match) as info:
        load_hooks("broken_hooks", tmp_path)
    assert "broken_hooks" in info.value.message


def test_missing_module(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="hooks module 'absent' not found in"):
        load_hooks("absent", tmp_path)


def test_not_a_module_name(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a Python module name"):
        load_hooks("hooks.py/../x", tmp_path)
