"""Issue 3 end to end: OpenVINO, ONNX/TensorRT and TFLite device bundles from one build, the
shared fidelity gate with fallbacks, independent targets, and the report."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edgepack.build import BuildResult, build
from edgepack.runtime.sample import read_sample
from edgepack.signing.keys import generate_keypair, load_public_keys
from edgepack.signing.verify import verify_and_extract, verify_artifact

pytestmark = pytest.mark.slow

EPOCH = 1_700_000_000
DEVICE_TARGETS = ["intel-openvino", "jetson-trt", "rpi-tflite"]


@dataclass(frozen=True)
class Built:
    project: Path
    out: Path
    result: BuildResult

    def bundle(self, target: str) -> Path:
        return self.out / f"digits-1.0.0-{target}.bundle.tar.gz"

    def by_target(self, target: str) -> Any:
        return next(r for r in self.result.results if r.target == target)


def _project(sample_dir: Path, dest: Path) -> Path:
    shutil.copytree(sample_dir, dest, ignore=shutil.ignore_patterns("keys", "__pycache__"))
    generate_keypair(dest / "keys" / "dev")
    return dest


def _manifest(bundle: Path) -> dict[str, Any]:
    with tarfile.open(bundle) as t:
        member = t.extractfile("edgepack.json")
        assert member is not None
        return dict(json.loads(member.read()))


@pytest.fixture(scope="session")
def devices(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("devices")
    project = _project(sample_dir, root / "digits")
    out = root / "dist"
    return Built(project, out, build(project, out, DEVICE_TARGETS, epoch=EPOCH))


def test_three_backends_build_and_verify(devices: Built) -> None:
    assert devices.result.ok, [r.error for r in devices.result.results]
    assert sorted(p.name for p in devices.out.iterdir()) == sorted(
        devices.bundle(t).name for t in DEVICE_TARGETS
    )
    keys = load_public_keys([devices.project / "keys" / "dev.pub"])
    for target in DEVICE_TARGETS:
        verified = verify_artifact(devices.bundle(target), keys)
        assert verified.manifest["target"]["name"] == target


def test_every_bundle_carries_a_signed_sbom_of_what_it_vendors(devices: Built) -> None:
    from tests.sbom_checks import check_artifact_sbom

    keys = load_public_keys([devices.project / "keys" / "dev.pub"])
    for target in DEVICE_TARGETS:
        sbom = check_artifact_sbom(devices.bundle(target), keys)
        assert sbom["metadata"]["component"]["name"] == "digits"


@pytest.mark.parametrize(
    ("target", "backend", "fmt", "arch"),
    [
        ("intel-openvino", "openvino", "openvino", "x86_64"),
        ("jetson-trt", "onnxruntime", "onnx", "aarch64"),
        ("rpi-tflite", "litert", "tflite", "aarch64"),
    ],
)
def test_each_backend_ships_int8_within_the_gate(
    devices: Built, target: str, backend: str, fmt: str, arch: str
) -> None:
    m = _manifest(devices.bundle(target))
    assert (m["runtime"]["backend"], m["model"]["format"], m["target"]["arch"]) == (backend, fmt, arch)
    assert (m["model"]["precision"], m["model"]["variant"]) == ("int8", "int8")
    metrics = m["fidelity"]["metrics"]
    assert m["fidelity"]["passed"] is True
    assert metrics["top1_agreement"] >= 0.98
    assert metrics["accuracy_drop"] <= 0.01


def test_jetson_manifest_states_device_provided_runtime_and_trt_settings(devices: Built) -> None:
    m = _manifest(devices.bundle("jetson-trt"))
    assert any("onnxruntime-gpu" in p for p in m["runtime"]["device_packages"])
    packages = {p["name"] for p in m["runtime"]["packages"]}
    assert "onnxruntime" not in packages and "onnxruntime-gpu" not in packages
    providers = [p["name"] for p in m["runtime"]["settings"]["providers"]]
    assert providers == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    trt = m["runtime"]["settings"]["providers"][0]["options"]
    assert trt["trt_engine_cache_enable"] and trt["trt_timing_cache_enable"]
    cache = m["runtime"]["trt_engine_cache"]
    assert cache["model_sha256"] == m["model"]["sha256"]
    assert cache["precision"] == "fp16+int8"  # what the TensorRT flags allow, as the device keys it


def test_openvino_bundle_runs_on_this_host(devices: Built, tmp_path: Path) -> None:
    """intel-openvino is x86_64, cp312, glibc 2.35: this host can run it for real, isolated."""
    from edgepack.errors import PlatformError
    from edgepack.invoke.lambda_base import find_python

    try:
        python = str(find_python("python3.12", "x86_64").path)
    except PlatformError:
        pytest.skip("no CPython 3.12 on this host")
    root = tmp_path / "bundle"
    keys = load_public_keys([devices.project / "keys" / "dev.pub"])
    verify_and_extract(devices.bundle("intel-openvino"), root, keys)  # what a device runs
    run = [python, "-I", "-S", str(root / "predict.py")]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ""}
    health = subprocess.run([*run, "health"], capture_output=True, text=True, env=env, cwd=root, timeout=120)
    assert health.returncode == 0, health.stdout + health.stderr
    assert json.loads(health.stdout.splitlines()[-1])["ok"] is True

    sample_inputs, _ = read_sample(root, _manifest(devices.bundle("intel-openvino"))["sample"])
    request = json.dumps({"inputs": {k: v.tolist() for k, v in sample_inputs.items()}})
    answer = subprocess.run(
        [*run, "predict", "-"], input=request, capture_output=True, text=True, env=env, cwd=root, timeout=120
    )
    assert answer.returncode == 0, answer.stderr
    probabilities = np.asarray(json.loads(answer.stdout.splitlines()[-1])["outputs"]["probabilities"])
    assert probabilities.shape == (1, 10)

    bad = subprocess.run(
        [*run, "predict", "-"],
        input='{"inputs": {"picture": [1]}}',
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
    )
    assert bad.returncode == 2
    assert "picture" in json.loads(bad.stdout.splitlines()[-1])["error"]["message"]


def test_constant_calibration_is_caught_and_the_fallback_ships(sample_dir: Path, tmp_path: Path) -> None:
    """Constant calibration data is refused unless the config allows it; allowed, int8
    calibrated on it fails the gate and the chain falls back."""
    project = _project(sample_dir, tmp_path / "digits")
    calibration = np.load(project / "data" / "calibration.npz")["image"]
    np.savez(project / "data" / "calibration.npz", image=np.full_like(calibration, 0.5))
    refused = build_refusal(project, tmp_path / "refused")
    assert refused.exit_code == 2 and "calibration" in refused.hint()
    config = project / "edgepack.yaml"
    data = yaml.safe_load(config.read_text())
    data["calibration"]["allow_constant"] = True
    config.write_text(yaml.safe_dump(data))
    result = build(project, tmp_path / "dist", ["jetson-trt"], epoch=EPOCH)
    assert result.ok, result.results[0].error
    shipped = result.results[0]
    assert shipped.variant == "fp16"
    assert shipped.attempts[0]["variant"] == "int8"
    assert shipped.attempts[0]["passed"] is False
    m = _manifest(tmp_path / "dist" / "digits-1.0.0-jetson-trt.bundle.tar.gz")
    assert m["model"]["variant"] == "fp16"
    assert [a["variant"] for a in m["fidelity"]["attempts"]] == ["int8", "int8-mixed", "fp16"]


def build_refusal(project: Path, out: Path) -> Any:
    with pytest.raises(Exception) as caught:
        build(project, out, ["jetson-trt"], epoch=EPOCH)
    assert not out.exists()
    return caught.value


def test_a_failing_target_leaves_the_others_and_nothing_of_its_own(sample_dir: Path, tmp_path: Path) -> None:
    project = _project(sample_dir, tmp_path / "digits")
    config = project / "edgepack.yaml"
    data = yaml.safe_load(config.read_text())
    data["targets"] = [
        "rpi-tflite",
        {
            "name": "jetson-trt",
            "overrides": {"runtime_packages": ["numpy>=1.26,<2", "edgepack-no-such-package==9.9"]},
        },
    ]
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "dist"
    result = build(project, out, epoch=EPOCH)
    assert not result.ok
    failed = next(r for r in result.results if not r.ok)
    assert failed.target == "jetson-trt"
    assert "jetson-trt" in (failed.error or "")
    assert "edgepack-no-such-package" in (failed.error or "")
    assert sorted(p.name for p in out.iterdir()) == ["digits-1.0.0-rpi-tflite.bundle.tar.gz"]


def test_report_compares_targets_with_the_original(devices: Built, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edgepack.cli.main import cli

    out = tmp_path / "report"
    result = CliRunner().invoke(
        cli,
        ["report", str(devices.out), "--out", str(out), "--runs", "20", "--project", str(devices.project)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in rows] == ["original", *DEVICE_TARGETS]
    for row in rows:
        assert row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"]
    for row in rows[1:]:
        assert row["model_bytes"] < rows[0]["model_bytes"]
        assert row["fidelity"]["top1_agreement"] >= 0.98
    page = (out / "index.html").read_text()
    assert all(t in page for t in DEVICE_TARGETS)
    assert {p.name for p in out.glob("*.png")} == {"size.png", "latency.png", "accuracy.png"}
