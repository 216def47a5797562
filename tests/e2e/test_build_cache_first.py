"""Cache first: an unchanged target is answered from file digests alone (no framework
imported, no model loaded, nothing run); the original model's outputs on the validation set
are cached by the model's and the data's digests; edgepack's own code is part of every key."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgepack.build import build
from edgepack.signing.keys import generate_keypair
from tests.frameworks import ML_FRAMEWORKS

pytestmark = pytest.mark.slow

FRAMEWORKS = ML_FRAMEWORKS
EPOCH = "1700000000"

# Runs one build through the CLI and reports, on its last stderr line, which frameworks it imported.
_BUILD_AND_REPORT = """
import json, sys
from edgepack.cli.main import main
FRAMEWORKS = {frameworks!r}
sys.argv = ["edgepack", *sys.argv[1:]]
code = 0
try:
    main()
except SystemExit as e:
    code = e.code
imported = sorted({{m.split(".")[0] for m in sys.modules}} & set(FRAMEWORKS))
print("IMPORTED " + json.dumps(imported), file=sys.stderr)
sys.exit(code)
"""


def _build(project: Path, out: Path, *targets: str) -> tuple[dict[str, Any], list[str], list[str]]:
    """(the --json document, the progress lines, the frameworks the process imported)."""
    args = ["build", str(project), "--out", str(out), "--json"]
    for t in targets:
        args += ["--target", t]
    proc = subprocess.run(
        [sys.executable, "-c", _BUILD_AND_REPORT.format(frameworks=FRAMEWORKS), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    imported = json.loads(next(line for line in reversed(lines) if line.startswith("IMPORTED "))[9:])
    return json.loads(proc.stdout), lines, imported


def _targets(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["target"]: t for t in document["targets"]}


@pytest.fixture
def project(sample_project: Path) -> Path:
    generate_keypair(sample_project / "keys" / "dev")
    return sample_project


def _edit_config(project: Path, change: Any) -> None:
    config = yaml.safe_load((project / "edgepack.yaml").read_text())
    change(config)
    (project / "edgepack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_unchanged_rebuild_imports_no_framework_and_runs_nothing(project: Path, tmp_path: Path) -> None:
    first, _, imported_cold = _build(project, tmp_path / "out", "lambda-x86_64")
    assert _targets(first)["lambda-x86_64"]["ok"]
    # The first build gated the converted model with its runtime (TensorFlow too, unless the
    # conversion and the reference outputs were already cached): the check sees imports.
    assert imported_cold

    again, lines, imported = _build(project, tmp_path / "out", "lambda-x86_64")
    target = _targets(again)["lambda-x86_64"]
    assert target["cached"] and target["ok"]
    assert imported == []
    assert not any("loading model" in line or "original model" in line for line in lines)
    assert set(target["stages"]) == {"reuse"}
    assert (tmp_path / "out" / "digits-1.0.0-lambda-x86_64.zip").is_file()


def test_a_changed_target_reuses_the_reference_outputs_and_the_conversion(
    project: Path, tmp_path: Path
) -> None:
    _build(project, tmp_path / "out", "lambda-x86_64")
    # The hooks decide the artifact, not the conversion: the target is rebuilt from cached parts.
    hooks = project / "hooks.py"
    hooks.write_text(hooks.read_text() + "\n# changed\n")

    document, lines, imported = _build(project, tmp_path / "out", "lambda-x86_64")
    target = _targets(document)["lambda-x86_64"]
    assert target["ok"] and not target["cached"]
    assert any("outputs on the validation set: from the build cache" in line for line in lines)
    assert not any("loading model" in line for line in lines)
    assert "tensorflow" not in imported and "keras" not in imported
    assert {"convert", "vendor", "archive", "verify"} <= set(target["stages"])


def test_fewer_validation_samples_run_the_original_model_again(project: Path, tmp_path: Path) -> None:
    _build(project, tmp_path / "out", "lambda-x86_64")
    _edit_config(project, lambda c: c["validation"].update(samples=200))  # same file, a prefix of it

    document, lines, _ = _build(project, tmp_path / "out", "lambda-x86_64")
    target = _targets(document)["lambda-x86_64"]
    assert target["ok"] and not target["cached"]
    assert any("running the original model on 200 validation samples" in line for line in lines)


def test_changed_validation_data_is_a_new_key(project: Path, tmp_path: Path) -> None:
    import numpy as np

    _build(project, tmp_path / "out", "lambda-x86_64")
    path = project / "data" / "validation.npz"
    with np.load(path) as data:
        arrays = {k: data[k][:300] for k in data.files}
    np.savez(path, **arrays)

    document, lines, _ = _build(project, tmp_path / "out", "lambda-x86_64")
    assert not _targets(document)["lambda-x86_64"]["cached"]
    assert any("running the original model on 300 validation samples" in line for line in lines)


def test_edgepack_code_is_part_of_the_artifact_key(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An artifact written by other edgepack code (a fixed packaging bug) is never reused."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    first = build(project, tmp_path / "out", ["lambda-x86_64"])
    again = build(project, tmp_path / "out", ["lambda-x86_64"])
    assert first.ok and again.results[0].cached

    monkeypatch.setattr(importlib.import_module("edgepack.build"), "edgepack_code_digest", lambda: "0" * 64)
    rebuilt = build(project, tmp_path / "out", ["lambda-x86_64"])
    assert rebuilt.ok and not rebuilt.results[0].cached


def test_one_build_shares_the_reference_run_across_targets(project: Path, tmp_path: Path) -> None:
    """Both default targets in one process: the original model runs once at most."""
    document, lines, _ = _build(project, tmp_path / "out")
    assert [t["target"] for t in document["targets"]] == ["lambda-x86_64", "lambda-arm64"]
    assert all(t["ok"] for t in document["targets"])
    reference_lines = [line for line in lines if "original model" in line]
    assert len(reference_lines) == 1, reference_lines


def test_a_cached_artifact_that_changed_is_refused_and_dropped(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reused artifact is copied into place only with the bytes verified when it was built."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    assert build(project, tmp_path / "out", ["lambda-x86_64"]).ok
    name = "digits-1.0.0-lambda-x86_64.zip"
    entries = Path(os.environ["EDGEPACK_CACHE_DIR"]) / "artifacts"
    entry = max((d for d in entries.iterdir() if (d / name).is_file()), key=lambda d: d.stat().st_mtime)
    data = bytearray((entry / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (entry / name).write_bytes(bytes(data))
    placed = (tmp_path / "out" / name).read_bytes()

    refused = build(project, tmp_path / "out", ["lambda-x86_64"])
    assert not refused.ok
    assert f"the cached {name} changed since it was verified" in (refused.results[0].error or "")
    assert (tmp_path / "out" / name).read_bytes() == placed  # what was in place stays
    assert not entry.exists()

    rebuilt = build(project, tmp_path / "out", ["lambda-x86_64"])
    assert rebuilt.ok and not rebuilt.results[0].cached
    assert (tmp_path / "out" / name).read_bytes() == placed  # reproducible: the same bytes again
