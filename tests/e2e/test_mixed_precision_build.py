"""Mixed precision through the whole build: on a model full int8 ruins, the chain ships int8
with a few layers in float that passes the gate (not fp16), records which layers stayed float
and why, and says what it cost against full int8."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "passes"))
from mixed_models import INPUT, build_outlier_model, build_rare_input_model, features, rare_input_features

from edgepack.cli.main import cli
from edgepack.signing.keys import generate_keypair

pytestmark = pytest.mark.slow


def _project(root: Path, model: Path, calibration: np.ndarray, validation: np.ndarray, target: str) -> Path:
    (root / "data").mkdir(parents=True)
    np.savez(root / "data" / "calibration.npz", **{INPUT: calibration})
    np.savez(root / "data" / "validation.npz", **{INPUT: validation})
    generate_keypair(root / "keys" / "dev")
    config = {
        "name": "outliers",
        "version": "1.0.0",
        "model": {"path": str(model.relative_to(root))},
        "calibration": {"path": "data/calibration.npz"},
        "validation": {"path": "data/validation.npz"},
        "targets": [target],
        "signing": {"key": "keys/dev.key"},
    }
    (root / "edgepack.yaml").write_text(yaml.safe_dump(config))
    return root


def _manifest(bundle: Path) -> dict[str, Any]:
    with tarfile.open(bundle) as t:
        member = t.extractfile("edgepack.json")
        assert member is not None
        return dict(json.loads(member.read()))


@pytest.mark.parametrize(
    ("target", "backend", "kind"),
    [
        ("rpi-tflite", "litert", "outlier"),
        ("jetson-trt", "onnxruntime", "outlier"),
        ("intel-openvino", "openvino", "rare"),
    ],
)
def test_int8_with_a_few_float_layers_ships_where_full_int8_fails(
    target: str, backend: str, kind: str, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    (root / "model").mkdir(parents=True)
    if kind == "outlier":
        model = build_outlier_model(root / "model" / "net.keras")
        calibration, validation = features(1, 200), features(2, 300)
    else:  # NNCF reverts every layer of the outlier model; this one it can mix
        model = build_rare_input_model(root / "model" / "net.keras")
        calibration, validation = rare_input_features(1, 200), rare_input_features(2, 300)
    project = _project(root, model, calibration, validation, target)

    outcome = CliRunner().invoke(
        cli, ["build", str(project), "--out", str(tmp_path / "dist"), "--json", "-q"]
    )
    assert outcome.exit_code == 0, outcome.output
    (result,) = json.loads(outcome.stdout)["targets"]
    assert result["backend"] == backend
    assert [a["variant"] for a in result["attempts"]][:2] == ["int8", "int8-mixed"]
    full = result["attempts"][0]
    assert full["passed"] is False and full["precision"] == "int8", "full int8 was meant to fail the gate"
    assert result["variant"] == "int8-mixed"
    assert result["precision"] == "int8"
    assert result["float_layers"] >= 1
    assert result["fidelity"]["passed"] is True
    cost = result["mixed_cost"]
    assert cost["size_bytes"] > 0 and cost["full_int8_size_bytes"] > 0 and cost["p50_ms"] > 0

    manifest = _manifest(Path(result["artifact"]))
    quantization = manifest["model"]["details"]["quantization"]
    kept = quantization.get("float_nodes") or quantization.get("float_layers")
    assert len(kept) == result["float_layers"]
    assert manifest["model"]["details"]["ops"]["quantized_ops"] >= 1, "a mix must still hold int8 ops"
    assert manifest["model"]["details"]["ops"]["float_ops"] >= 1
    assert manifest["fidelity"]["mixed_cost"] == cost

    summary = CliRunner().invoke(cli, ["build", str(project), "--out", str(tmp_path / "dist"), "-q"])
    assert summary.exit_code == 0
    assert f"int8 mixed ({result['float_layers']} float)" in summary.stdout
    assert "the p50 latency of full int8" not in summary.stdout or "kept in float cost" in summary.stdout
