"""The layer split on the sample, end to end: build -> two signed zips -> verify -> invoke.

``function.layer: true`` puts the vendored packages in ``<artifact>.layer.zip`` under
``python/`` (Lambda's /opt/python); the function zip keeps the model, the wrapper, the
runtime core, hooks, sample, manifest and attestation, and names the layer by digest.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from edgepack.build import BuildResult, build
from edgepack.cli.main import cli
from edgepack.signing.keys import generate_keypair, load_public_keys
from edgepack.signing.verify import verify_artifact

pytestmark = pytest.mark.slow

EPOCH = 1_700_000_000
TARGET = "lambda-x86_64"
FUNCTION = "digits-1.0.0-lambda-x86_64.zip"
LAYER = "digits-1.0.0-lambda-x86_64.layer.zip"
FUNCTION_TOP = {
    "__pycache__",  # handler.py and the hooks, precompiled
    "attestation.dsse.json",
    "edgepack.json",
    "edgepack_runtime",
    "edgepack_user_hooks.py",
    "handler.py",
    "model",
    "sample.npz",
    "sbom.cdx.json",  # lists the packages the layer carries
}


@dataclass(frozen=True)
class Layered:
    project: Path
    out: Path
    result: BuildResult
    public_key: Path

    @property
    def function(self) -> Path:
        return self.out / FUNCTION

    @property
    def layer(self) -> Path:
        return self.out / LAYER


def _layered_project(sample_dir: Path, dest: Path) -> Path:
    shutil.copytree(sample_dir, dest, ignore=shutil.ignore_patterns("keys", "__pycache__"))
    generate_keypair(dest / "keys" / "dev")
    config = dest / "edgepack.yaml"
    data = yaml.safe_load(config.read_text())
    data["function"] = {"layer": True}
    config.write_text(yaml.safe_dump(data))
    return dest


@pytest.fixture(scope="module")
def layered(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Layered:
    root = tmp_path_factory.mktemp("layer")
    project = _layered_project(sample_dir, root / "digits")
    out = root / "dist"
    result = build(project, out, [TARGET], epoch=EPOCH)
    return Layered(project, out, result, project / "keys" / "dev.pub")


def _manifest(artifact: Path) -> dict[str, Any]:
    with zipfile.ZipFile(artifact) as z:
        return dict(json.loads(z.read("edgepack.json")))


def _names(artifact: Path) -> list[str]:
    with zipfile.ZipFile(artifact) as z:
        return z.namelist()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- what the build writes --------------------------------------------------------------


def test_build_writes_a_function_zip_and_its_layer(layered: Layered) -> None:
    assert layered.result.ok, [r.error for r in layered.result.results]
    deploy = FUNCTION.removesuffix(".zip") + ".deploy"  # serverless.yml and template.yaml for the pair
    assert sorted(p.name for p in layered.out.iterdir()) == sorted([FUNCTION, LAYER, deploy])
    result = layered.result.results[0]
    assert result.layer is not None and result.layer["artifact"] == str(layered.layer)


def test_function_zip_holds_no_vendored_packages(layered: Layered) -> None:
    assert {n.split("/", 1)[0] for n in _names(layered.function)} == FUNCTION_TOP


def test_layer_holds_the_packages_under_python(layered: Layered) -> None:
    names = _names(layered.layer)
    outside = sorted(n for n in names if not n.startswith("python/"))
    assert outside == ["attestation.dsse.json", "edgepack.json", "sbom.cdx.json"]
    tops = {n.split("/")[1] for n in names if n.startswith("python/")}
    assert {"numpy", "ai_edge_litert", "aws_lambda_powertools"} <= tops
    # The function's init imports them from /opt/python: they ship precompiled for cp312.
    assert any(re.match(r"python/numpy/__pycache__/__init__\.cpython-312\.pyc$", n) for n in names)


def test_both_zips_verify_as_artifacts(layered: Layered) -> None:
    keys = load_public_keys([layered.public_key])
    function = verify_artifact(layered.function, keys)
    layer = verify_artifact(layered.layer, keys)
    assert layer.manifest["layer"] is True
    assert layer.manifest["target"]["kind"] == "lambda"
    assert all(n.startswith("python/") or n in ("edgepack.json", "sbom.cdx.json") for n in layer.subjects)
    assert not any(n.startswith("python/") for n in function.subjects)
    result = CliRunner().invoke(cli, ["verify", str(layered.layer), "--key", str(layered.public_key)])
    assert result.exit_code == 0, result.output


def test_both_zips_carry_a_signed_sbom_of_the_layers_packages(layered: Layered) -> None:
    from tests.sbom_checks import check_artifact_sbom

    keys = load_public_keys([layered.public_key])
    layer = check_artifact_sbom(layered.layer, keys)
    # The function's SBOM lists the same packages; their dist-info (licences) is in the layer.
    function = check_artifact_sbom(layered.function, keys, licences=False)
    assert [c["purl"] for c in function["components"]] == [c["purl"] for c in layer["components"]]


def test_function_manifest_names_the_layer_by_digest(layered: Layered) -> None:
    m = _manifest(layered.function)
    layer = m["runtime"]["layer"]
    assert layer["file"] == LAYER
    assert layer["sha256"] == _sha(layered.layer)
    assert layer["name"] == "digits-lambda-x86_64-deps"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,140}", layer["name"])
    assert layer["compatible_runtimes"] == ["python3.12"]
    assert layer["compatible_architectures"] == ["x86_64"]
    layer_manifest = _manifest(layered.layer)
    assert layer_manifest["runtime"]["layer"]["content_sha256"] == layer["content_sha256"]
    assert m["function"]["layer"] is True
    # The packages are still the function's runtime packages, wherever they are shipped.
    assert m["runtime"]["packages"] == layer_manifest["runtime"]["packages"]
    assert m["runtime"]["bytecode"]["precompiled"] is True
    sizes = layer["unzipped_bytes"] + sum(i.file_size for i in zipfile.ZipFile(layered.function).infolist())
    assert sizes <= 262_144_000


# -- rebuilding -------------------------------------------------------------------------


def test_unchanged_rebuild_reuses_both_from_the_cache(layered: Layered) -> None:
    def files() -> dict[str, str]:
        return {str(p.relative_to(layered.out)): _sha(p) for p in layered.out.rglob("*") if p.is_file()}

    before = files()
    again = build(layered.project, layered.out, [TARGET], epoch=EPOCH)
    assert again.ok and again.results[0].cached
    assert files() == before


def test_model_only_change_keeps_the_layer_zip_byte_identical(
    layered: Layered, sample_dir: Path, tmp_path: Path
) -> None:
    from edgepack.model.tf_env import import_keras

    keras = import_keras()
    project = tmp_path / "digits"
    shutil.copytree(layered.project, project)
    path = project / "model" / "digits.keras"
    model = keras.models.load_model(path)
    weights = model.get_weights()
    weights[-1] = weights[-1] + 1e-3  # the last bias: a new model that still passes the gate
    model.set_weights(weights)
    model.save(path)
    out = tmp_path / "dist"
    result = build(project, out, [TARGET], epoch=EPOCH)
    assert result.ok, [r.error for r in result.results]
    assert (out / LAYER).read_bytes() == layered.layer.read_bytes()
    assert _sha(out / FUNCTION) != _sha(layered.function)
    assert _manifest(out / FUNCTION)["runtime"]["layer"] == _manifest(layered.function)["runtime"]["layer"]


# -- local invoke -----------------------------------------------------------------------


def test_invoke_mounts_the_layer_at_opt(layered: Layered, sample_dir: Path) -> None:
    from edgepack.invoke.local import invoke_local

    event = json.loads((sample_dir / "events" / "direct.json").read_text())
    result = invoke_local(layered.function, event)
    assert result.ok, result.logs
    assert result.init_ms is not None
    assert result.response["model_name"] == "digits"
    assert len(result.response["outputs"]["probabilities"][0]) == 10
    assert "InferenceLatency" in result.logs  # Powertools, imported from the layer, reached the logs


def _invoke_cli(function: Path, sample_dir: Path, key: Path) -> Any:
    event = sample_dir / "events" / "direct.json"
    return CliRunner().invoke(cli, ["invoke", str(function), "--key", str(key), "--event", str(event)])


def test_invoke_refuses_a_missing_layer(layered: Layered, sample_dir: Path, tmp_path: Path) -> None:
    alone = tmp_path / FUNCTION
    shutil.copyfile(layered.function, alone)
    result = _invoke_cli(alone, sample_dir, layered.public_key)
    assert result.exit_code == 2, result.output
    assert f"layer {LAYER} is missing" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_invoke_refuses_a_tampered_layer(layered: Layered, sample_dir: Path, tmp_path: Path) -> None:
    shutil.copyfile(layered.function, tmp_path / FUNCTION)
    data = bytearray(layered.layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / LAYER).write_bytes(bytes(data))
    result = _invoke_cli(tmp_path / FUNCTION, sample_dir, layered.public_key)
    assert result.exit_code == 2, result.output
    assert "the function was built with" in result.output and "sha256" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_invoke_refuses_the_layer_zip_itself(layered: Layered, sample_dir: Path) -> None:
    result = _invoke_cli(layered.layer, sample_dir, layered.public_key)
    assert result.exit_code == 2, result.output
    assert "this is a Lambda layer" in result.output
