"""An ONNX model bound for Lambda and a Raspberry Pi ships on ONNX Runtime, vendored and trimmed
for the target, and runs there: the Lambda zip through the faithful local invoke, the Pi bundle's
health check on aarch64 (Debian bookworm's python3.11 under qemu, as Raspberry Pi OS has)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgepack.build import BuildResult, build
from edgepack.cache import BuildCache
from edgepack.invoke.emulation import aarch64_python
from edgepack.invoke.local import invoke_local
from edgepack.runtime.trust.reader import verify_and_extract
from edgepack.signing.keys import generate_keypair

pytestmark = pytest.mark.slow

EPOCH = 1_700_000_000
TARGETS = ["lambda-x86_64", "rpi-tflite"]


@pytest.fixture(scope="module")
def onnx_build(
    sample_dir: Path, keras_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> BuildResult:
    """The sample's model exported to ONNX (tf2onnx, as a user would bring it), built for both."""
    from edgepack.model.loader import load_model
    from edgepack.passes.base import PassContext
    from edgepack.passes.onnx import OnnxConvert, OnnxConvertConfig

    root = tmp_path_factory.mktemp("onnx-project")
    project = root / "digits"
    shutil.copytree(sample_dir, project, ignore=shutil.ignore_patterns("keys", "__pycache__", "model"))
    work = root / "convert"
    work.mkdir()
    exported = OnnxConvert().run(
        load_model(keras_model_path).artifact,
        OnnxConvertConfig(),
        PassContext(work_dir=work, target="export"),
    )
    (project / "model").mkdir()
    shutil.copyfile(exported.path, project / "model" / "digits.onnx")
    generate_keypair(project / "keys" / "dev")
    config = yaml.safe_load((project / "edgepack.yaml").read_text())
    config["model"] = {"path": "model/digits.onnx"}
    config["targets"] = TARGETS
    (project / "edgepack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return build(project, root / "dist", epoch=EPOCH)


def _by_target(result: BuildResult, target: str) -> Any:
    return next(r for r in result.results if r.target == target)


def test_both_targets_ship_int8_on_onnx_runtime(onnx_build: BuildResult) -> None:
    assert onnx_build.ok, [r.error for r in onnx_build.results]
    for target in TARGETS:
        r = _by_target(onnx_build, target)
        assert (r.backend, r.plan, r.format, r.precision) == ("onnxruntime", "sources.onnx", "onnx", "int8")
        assert r.fidelity["passed"] is True


def test_lambda_zip_is_trimmed_and_answers_through_the_local_invoke(
    onnx_build: BuildResult, sample_dir: Path
) -> None:
    r = _by_target(onnx_build, "lambda-x86_64")
    assert r.unzipped_bytes < 262_144_000 and r.artifact_bytes < 52_428_800
    event = json.loads((sample_dir / "events" / "direct.json").read_text())
    result = invoke_local(r.artifact, event)
    assert result.error is None and result.init_error is None, result.logs
    assert result.response["outputs"]["label"] == [5]


def test_pi_bundle_passes_its_health_check_on_aarch64(onnx_build: BuildResult, tmp_path: Path) -> None:
    r = _by_target(onnx_build, "rpi-tflite")
    manifest = verify_and_extract(r.artifact, tmp_path / "bundle", [], unverified=True).manifest
    trimmed = manifest["runtime"]["trimmed"]
    assert any(p.startswith("onnxruntime/capi/libonnxruntime.so") for p in trimmed)
    assert any(p.startswith("onnxruntime/transformers") for p in trimmed)
    emulated = aarch64_python("3.11", BuildCache.default())
    root = tmp_path / "bundle"
    health = subprocess.run(
        [*emulated.command(), "-I", "-S", str(root / "predict.py"), "health"],
        capture_output=True,
        text=True,
        cwd=root,
        env={"PATH": "/usr/bin:/bin"},
        timeout=600,
    )
    assert health.returncode == 0, health.stdout[-2000:] + health.stderr[-2000:]
    assert json.loads(health.stdout.splitlines()[-1])["ok"] is True
