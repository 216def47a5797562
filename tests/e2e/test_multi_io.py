"""A model with two named inputs and two named outputs keeps names and order through the
whole build, into the manifest, and into the request/response format of the invoked artifact."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgepack.build import build
from edgepack.signing.keys import generate_keypair

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def multi_io_artifact(multi_io_keras_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("multi-io-project")
    shutil.copyfile(multi_io_keras_path, project / "model.keras")
    rng = np.random.default_rng(7)
    for name, n in (("calibration", 100), ("validation", 200)):
        np.savez(
            project / f"{name}.npz",
            pixels=rng.uniform(0, 1, (n, 4, 4, 1)).astype(np.float32),
            meta=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        )
    config = {
        "name": "multi-io",
        "version": "2.0.1",
        "model": {"path": "model.keras"},
        "calibration": {"path": "calibration.npz"},
        # An untrained model has flat class scores: gate on agreement and error, loosely.
        "validation": {
            "path": "validation.npz",
            "thresholds": {
                "min_top1_agreement": 0.9,
                "min_cosine_similarity": 0.95,
                "max_accuracy_drop": None,
            },
        },
        "targets": ["lambda-x86_64"],
        "signing": {"key": "dev.key"},
    }
    (project / "edgepack.yaml").write_text(yaml.safe_dump(config))
    generate_keypair(project / "dev")
    result = build(project, project / "dist", epoch=1_700_000_000)
    assert result.ok, result.results[0].error
    artifact = result.results[0].artifact
    assert artifact is not None
    return artifact


def test_manifest_keeps_names_and_order(multi_io_artifact: Path) -> None:
    with zipfile.ZipFile(multi_io_artifact) as z:
        manifest = json.loads(z.read("edgepack.json"))
    signature = manifest["model"]["signature"]
    assert [t["name"] for t in signature["inputs"]] == ["pixels", "meta"]
    assert [t["name"] for t in signature["outputs"]] == ["class_probs", "score"]
    assert [t["shape"] for t in signature["inputs"]] == [[None, 4, 4, 1], [None, 3]]
    assert manifest["sample"]["inputs"] == ["pixels", "meta"]
    assert manifest["sample"]["outputs"] == ["class_probs", "score"]


def test_invoked_artifact_answers_by_name_in_order(
    multi_io_artifact: Path, multi_io_keras_path: Path
) -> None:
    from edgepack.invoke.local import invoke_local_many
    from edgepack.model.loader import load_model

    rng = np.random.default_rng(11)
    pixels = rng.uniform(0, 1, (2, 4, 4, 1)).astype(np.float32)
    meta = rng.uniform(-1, 1, (2, 3)).astype(np.float32)
    direct = {"inputs": {"meta": meta.tolist(), "pixels": pixels.tolist()}}  # any order in a mapping
    oip = {
        "inputs": [
            {"name": "meta", "shape": [2, 3], "datatype": "FP32", "data": meta.ravel().tolist()},
            {"name": "pixels", "shape": [2, 4, 4, 1], "datatype": "FP32", "data": pixels.ravel().tolist()},
        ],
        "outputs": [{"name": "score"}],
    }
    missing = {"inputs": {"pixels": pixels.tolist()}}
    first, second, third = (r.response for r in invoke_local_many(multi_io_artifact, [direct, oip, missing]))

    reference = load_model(multi_io_keras_path).predict({"pixels": pixels, "meta": meta})
    assert list(first["outputs"]) == ["class_probs", "score"]
    assert np.asarray(first["outputs"]["class_probs"]).shape == (2, 5)
    assert np.allclose(first["outputs"]["score"], reference["score"], atol=0.1)
    assert np.array_equal(
        np.argmax(first["outputs"]["class_probs"], -1), np.argmax(reference["class_probs"], -1)
    )

    assert [o["name"] for o in second["outputs"]] == ["score"]  # requested outputs only
    assert second["outputs"][0]["shape"] == [2, 1]

    assert third["statusCode"] == 400
    assert "meta" in third["error"]["message"]
