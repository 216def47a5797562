"""End to end on the sample: build -> verify -> invoke, with real converters, wheels and awslambdaric."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from edgepack.build import BuildResult, build
from edgepack.cache import BuildCache
from edgepack.cli.main import cli
from edgepack.signing.keys import generate_keypair

pytestmark = pytest.mark.slow

EPOCH = 1_700_000_000
X86 = "digits-1.0.0-lambda-x86_64.zip"
ARM = "digits-1.0.0-lambda-arm64.zip"


@dataclass(frozen=True)
class Built:
    project: Path
    out: Path
    result: BuildResult
    public_key: Path

    def artifact(self, name: str) -> Path:
        return self.out / name


def _copy_sample(sample_dir: Path, dest: Path) -> Path:
    shutil.copytree(sample_dir, dest, ignore=shutil.ignore_patterns("keys", "__pycache__"))
    generate_keypair(dest / "keys" / "dev")
    return dest


@pytest.fixture(scope="session")
def built(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("e2e")
    project = _copy_sample(sample_dir, root / "digits")
    out = root / "dist"
    result = build(project, out, epoch=EPOCH)
    return Built(project, out, result, project / "keys" / "dev.pub")


def _manifest(artifact: Path) -> dict[str, Any]:
    with zipfile.ZipFile(artifact) as z:
        return dict(json.loads(z.read("edgepack.json")))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edit_config(project: Path, change: Any) -> None:
    config = project / "edgepack.yaml"
    data = yaml.safe_load(config.read_text())
    change(data)
    config.write_text(yaml.safe_dump(data))


# -- the happy path ------------------------------------------------------------------


def test_every_default_target_builds(built: Built) -> None:
    assert built.result.ok, [r.error for r in built.result.results]
    # Nothing partial, nothing hidden: each zip and the deploy files rendered from its manifest.
    deploy = [name.removesuffix(".zip") + ".deploy" for name in (ARM, X86)]
    assert sorted(p.name for p in built.out.iterdir()) == sorted([ARM, X86, *deploy])
    for directory in deploy:
        rendered = sorted(p.name for p in (built.out / directory).iterdir())
        assert rendered == ["serverless.yml", "template.yaml"]


def test_manifest_records_what_shipped(built: Built) -> None:
    m = _manifest(built.artifact(X86))
    assert m["target"]["platform_tags"][0] == "manylinux_2_34_x86_64"
    assert (m["target"]["arch"], m["target"]["lambda_runtime"], m["target"]["glibc"]) == (
        "x86_64",
        "python3.12",
        "2.34",
    )
    assert (m["model"]["format"], m["model"]["precision"], m["model"]["variant"]) == (
        "tflite",
        "int8",
        "int8",
    )
    assert m["model"]["signature"]["inputs"][0]["name"] == "image"
    assert m["model"]["signature"]["outputs"][0]["name"] == "probabilities"
    fidelity = m["fidelity"]
    assert fidelity["passed"] is True
    assert fidelity["metrics"]["top1_agreement"] >= 0.98
    assert fidelity["metrics"]["accuracy_drop"] <= 0.01
    packages = {p["name"].lower().replace("_", "-") for p in m["runtime"]["packages"]}
    assert {"ai-edge-litert", "numpy", "aws-lambda-powertools"} <= packages
    assert m["runtime"]["trimmed"], "the profile's trim rules removed nothing"
    assert m["hooks"] == "edgepack_user_hooks"
    assert m["build"]["source_date_epoch"] == EPOCH
    assert m["sample"]["inputs"] == ["image"]
    assert m["sample"]["file"] == "sample.npz"
    # The health-check sample lives beside the manifest, not inside it (init never parses it).
    assert len(json.dumps(m)) < 64_000
    assert m["model"]["source"]["plan"] == "default"
    assert m["model"]["details"]["ops"]["quantized_ops"] > 0
    assert _manifest(built.artifact(ARM))["target"]["arch"] == "aarch64"


def test_init_imports_ship_precompiled(built: Built) -> None:
    """Lambda's task root is read-only: what init imports ships as bytecode for the
    target's Python (3.12 natively, 3.13 compiled under qemu for arm64)."""
    for name, tag in ((X86, "cpython-312"), (ARM, "cpython-313")):
        m = _manifest(built.artifact(name))
        with zipfile.ZipFile(built.artifact(name)) as z:
            pycs = [n for n in z.namelist() if n.endswith(".pyc")]
        if not m["runtime"]["bytecode"]["precompiled"]:
            assert name == ARM, m["runtime"]["bytecode"]  # only emulation may be unavailable
            continue
        assert m["runtime"]["bytecode"]["files"] == len(pycs) > 50
        assert f"numpy/__pycache__/__init__.{tag}.pyc" in pycs
        assert f"edgepack_runtime/__pycache__/predictor.{tag}.pyc" in pycs
        assert all(tag in p for p in pycs)
        assert not any(p.startswith("numpy/f2py") for p in pycs)  # only what init imports


def test_arm64_bytecode_is_compiled_natively_and_loads_under_qemu(built: Built, tmp_path: Path) -> None:
    """Under qemu, init only lists what it imports; a native CPython of the same version
    compiles it (bytecode does not depend on the architecture), and the emulated
    interpreter loads every one of those .pyc files instead of compiling the source."""
    import os
    import subprocess

    from edgepack.invoke.lambda_base import emulated_python

    bytecode = _manifest(built.artifact(ARM))["runtime"]["bytecode"]
    assert "(aarch64, under qemu); compiled by CPython 3.13" in bytecode["interpreter"]
    root = tmp_path / "task"
    with zipfile.ZipFile(built.artifact(ARM)) as z:
        z.extractall(root)
    interp = emulated_python("python3.13", "aarch64")
    proc = subprocess.run(
        [
            *interp.command(),
            "-I",
            "-S",
            "-B",
            "-v",
            "-c",
            f"import sys; sys.path.insert(0, {str(root)!r}); import handler",
        ],
        capture_output=True,
        text=True,
        cwd=root,
        env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8"},
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = [
        line for line in proc.stderr.splitlines() if line.startswith(f"# {root}") and " matches " in line
    ]
    assert len(loaded) == bytecode["files"]


def test_verify_accepts_both_artifacts(built: Built) -> None:
    for name in (X86, ARM):
        result = CliRunner().invoke(
            cli, ["verify", str(built.artifact(name)), "--key", str(built.public_key)]
        )
        assert result.exit_code == 0, result.output
        assert "verified" in result.output


def test_lambda_zip_fits_and_holds_the_runtime(built: Built) -> None:
    with zipfile.ZipFile(built.artifact(X86)) as z:
        names = set(z.namelist())
        unzipped = sum(i.file_size for i in z.infolist())
    assert {"edgepack.json", "attestation.dsse.json", "handler.py", "model/model.tflite"} <= names
    assert "edgepack_runtime/predictor.py" in names
    assert not any(n.startswith("edgepack/") for n in names), "the build side leaked into the artifact"
    assert built.artifact(X86).stat().st_size < 50 * 1024 * 1024
    assert unzipped < 262_144_000


def test_both_zips_carry_a_signed_sbom_of_what_they_vendor(built: Built) -> None:
    from edgepack.signing.keys import load_public_keys
    from tests.sbom_checks import check_artifact_sbom

    for name in (X86, ARM):
        sbom = check_artifact_sbom(built.artifact(name), load_public_keys([built.public_key]))
        assert "numpy" in {c["name"] for c in sbom["components"]}


def _keras_labels(sample_dir: Path, images: np.ndarray) -> list[int]:
    from edgepack.model.loader import load_model

    source = load_model(sample_dir / "model" / "digits.keras")
    return [int(i) for i in np.argmax(source.predict({"image": images})["probabilities"], axis=-1)]


def test_invoke_every_event_shape(built: Built, sample_dir: Path) -> None:
    from edgepack.invoke.local import invoke_local_many

    events = [
        json.loads((sample_dir / "events" / f).read_text())
        for f in ("direct.json", "oip.json", "apigw-v2.json")
    ]
    results = invoke_local_many(built.artifact(X86), events)
    direct, oip, apigw = (r.response for r in results)

    images = np.asarray(events[1]["inputs"][0]["data"], dtype=np.float32).reshape(2, 8, 8, 1)
    expected = _keras_labels(sample_dir, images)
    assert direct["model_name"] == "digits"
    assert direct["outputs"]["label"] == expected[:1]
    assert np.asarray(direct["outputs"]["probabilities"]).shape == (1, 10)

    by_name = {o["name"]: o for o in oip["outputs"]}
    assert oip["id"] == "sample-1"
    assert by_name["probabilities"]["shape"] == [2, 10]
    assert by_name["probabilities"]["datatype"] == "FP32"
    assert by_name["label"]["data"] == expected

    assert apigw["statusCode"] == 200
    assert json.loads(apigw["body"])["outputs"]["label"] == expected[:1]

    assert "Init Duration" in results[0].report_line()
    assert "Init Duration" not in results[1].report_line()  # warm
    assert "InferenceLatency" in results[0].logs  # Powertools EMF metrics reach the logs


def _http(body: str, *, b64: bool = False) -> dict[str, Any]:
    return {
        "version": "2.0",
        "rawPath": "/",
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "headers": {"content-type": "application/json"},
        "body": body,
        "isBase64Encoded": b64,
    }


def test_bad_requests_get_400_and_the_function_keeps_serving(built: Built, sample_dir: Path) -> None:
    from edgepack.invoke.local import invoke_local_many

    good = json.loads((sample_dir / "events" / "direct.json").read_text())
    image = good["inputs"]["image"]
    bad_oip = copy.deepcopy(json.loads((sample_dir / "events" / "oip.json").read_text()))
    bad_oip["inputs"][0]["datatype"] = "BYTES"
    events = [
        {"inputs": {"picture": image}},  # wrong name
        {"inputs": {"image": [[1.0, 2.0]]}},  # wrong shape
        {"inputs": {"image": [[[["a"] * 1] * 8] * 8]}},  # wrong dtype
        bad_oip,  # wrong OIP datatype
        _http("{not json"),  # malformed JSON body
        _http("!!!not base64!!!", b64=True),  # bad base64
        _http(base64.b64encode(json.dumps(good).encode()).decode(), b64=True),  # good, base64
        good,
    ]
    results = invoke_local_many(built.artifact(X86), events)
    assert all(r.error is None and r.init_error is None for r in results), [r.error for r in results]
    responses = [r.response for r in results]
    for response in responses[:4]:
        assert response["statusCode"] == 400
        assert response["error"]["message"]
    assert "picture" in responses[0]["error"]["message"]
    assert "shape" in responses[1]["error"]["message"]
    for response in responses[4:6]:
        assert response["statusCode"] == 400
        assert json.loads(response["body"])["error"]["message"]
    assert responses[6]["statusCode"] == 200
    assert "outputs" in responses[7]


def test_invoke_cli_prints_response_and_report(built: Built, sample_dir: Path) -> None:
    result = CliRunner().invoke(
        cli, ["invoke", str(built.artifact(X86)), "--event", str(sample_dir / "events" / "direct.json")]
    )
    assert result.exit_code == 0, result.output
    assert '"probabilities"' in result.stdout
    assert "REPORT RequestId:" in result.output


def test_arm64_artifact_runs_under_emulation(built: Built, sample_dir: Path) -> None:
    """The sample's arm64 target is python3.13: its aarch64 wheels run under qemu with
    Debian's aarch64 CPython, through the same awslambdaric + Runtime API path."""
    import shutil as sh

    from edgepack.invoke.local import invoke_local_many

    if sh.which("mmdebstrap") is None:
        pytest.skip("needs mmdebstrap (scripts/setup.sh installs it) for an aarch64 CPython")
    m = _manifest(built.artifact(ARM))
    assert (m["target"]["arch"], m["target"]["lambda_runtime"], m["target"]["glibc"]) == (
        "aarch64",
        "python3.13",
        "2.34",
    )
    events = [json.loads((sample_dir / "events" / f).read_text()) for f in ("direct.json", "apigw-v2.json")]
    direct, apigw = invoke_local_many(built.artifact(ARM), events)
    assert direct.error is None and direct.init_error is None, direct.logs
    assert direct.response["outputs"]["label"] == [5]
    assert json.loads(apigw.response["body"])["outputs"]["label"] == [5]
    assert "Init Duration" in direct.report_line()


# -- cache and reproducibility ---------------------------------------------------------


def test_unchanged_rebuild_reuses_the_cache_and_is_identical(built: Built) -> None:
    before = _sha(built.artifact(X86))
    again = build(built.project, built.out, ["lambda-x86_64"], epoch=EPOCH)
    assert again.ok
    assert again.results[0].cached
    assert _sha(built.artifact(X86)) == before


def test_fresh_build_is_byte_identical(built: Built, tmp_path: Path) -> None:
    fresh = build(
        built.project, tmp_path / "dist", ["lambda-x86_64"], epoch=EPOCH, cache=BuildCache(tmp_path / "cache")
    )
    assert fresh.ok, fresh.results[0].error
    assert not fresh.results[0].cached
    assert _sha(tmp_path / "dist" / X86) == _sha(built.artifact(X86))


# -- the fidelity gate ---------------------------------------------------------------


def test_gate_falls_back_when_int8_drifts(built: Built, tmp_path: Path) -> None:
    project = tmp_path / "digits"
    shutil.copytree(built.project, project)

    def tighten(data: dict[str, Any]) -> None:
        data["validation"]["thresholds"]["max_abs_error"] = 0.01  # int8 cannot; int8-mixed or later can

    _edit_config(project, tighten)
    result = build(project, tmp_path / "dist", ["lambda-x86_64"], epoch=EPOCH)
    assert result.ok, result.results[0].error
    shipped = result.results[0]
    assert shipped.variant in {"int8-mixed", "int16x8", "fp16"}
    assert shipped.attempts[0]["variant"] == "int8"
    assert shipped.attempts[0]["passed"] is False
    assert any("max_abs_error" in f for f in shipped.attempts[0]["failures"])
    m = _manifest(tmp_path / "dist" / X86)
    assert m["model"]["variant"] == shipped.variant
    assert m["fidelity"]["attempts"][0]["variant"] == "int8"


def test_gate_fails_the_build_when_nothing_passes(built: Built, tmp_path: Path) -> None:
    project = tmp_path / "digits"
    shutil.copytree(built.project, project)
    _edit_config(project, lambda d: d["validation"]["thresholds"].update(max_abs_error=0.0))
    out = tmp_path / "dist"
    result = CliRunner().invoke(cli, ["build", str(project), "--target", "lambda-x86_64", "--out", str(out)])
    assert result.exit_code == 1
    assert "no variant passed the fidelity gate" in result.output
    for variant in ("int8", "int16x8", "fp16"):
        assert f"{variant}: max_abs_error" in result.output
    assert list(out.iterdir()) == []


# -- bad input: one line, exit 2, nothing left behind ---------------------------------


def _build_fails(project: Path, out: Path, *needles: str) -> None:
    result = CliRunner().invoke(cli, ["build", str(project), "--target", "lambda-x86_64", "--out", str(out)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("edgepack: error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0]
    assert not out.exists() or list(out.iterdir()) == []


def test_a_function_that_cannot_initialise_fails_the_build(built: Built, tmp_path: Path) -> None:
    project = tmp_path / "digits"
    shutil.copytree(built.project, project)
    (project / "hooks.py").write_text("import a_module_the_artifact_does_not_have\n")
    out = tmp_path / "dist"
    result = CliRunner().invoke(cli, ["build", str(project), "--target", "lambda-x86_64", "--out", str(out)])
    assert result.exit_code == 1
    assert "fails to initialise under its own runtime (python3.12" in result.output
    assert "a_module_the_artifact_does_not_have" in result.output
    assert list(out.iterdir()) == []


def test_corrupt_model(built: Built, tmp_path: Path) -> None:
    project = tmp_path / "digits"
    shutil.copytree(built.project, project)
    (project / "model" / "digits.keras").write_bytes(b"this is not a keras archive")
    _build_fails(project, tmp_path / "dist", "digits.keras")


def test_missing_calibration_data(built: Built, tmp_path: Path) -> None:
    project = tmp_path / "digits"
    shutil.copytree(built.project, project)
    _edit_config(project, lambda d: d["calibration"].update(path="data/missing.npz"))
    _build_fails(project, tmp_path / "dist", "calibration", "missing.npz")


def test_over_budget_zip_lists_the_largest_packages(built: Built, tmp_path: Path) -> None:
    project = tmp_path / "digits"
    shutil.copytree(built.project, project)

    def shrink(data: dict[str, Any]) -> None:
        data["targets"] = [{"name": "lambda-x86_64", "overrides": {"limits": {"zipped_bytes": 5_000_000}}}]

    _edit_config(project, shrink)
    _build_fails(project, tmp_path / "dist", "ai_edge_litert", "numpy")


def test_relative_paths_from_the_command_line(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`edgepack build digits --out dist` from the project's parent, as a user types it."""
    project = tmp_path / "digits"
    shutil.copytree(built.project, project)
    _edit_config(project, lambda d: d.update(version="1.0.1"))  # a new artifact, not a cache hit
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["build", "digits", "--target", "lambda-x86_64", "--out", "dist", "-q"])
    assert result.exit_code == 0, result.output
    assert "ok (cached)" not in result.output
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == [
        "digits-1.0.1-lambda-x86_64.deploy",
        "digits-1.0.1-lambda-x86_64.zip",
    ]


def _rewrite_zip(src: Path, dest: Path, change: Any) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info, data)


@pytest.mark.parametrize(
    ("case", "change", "needle"),
    [
        (
            "flipped byte",
            lambda n, d: bytes([d[0] ^ 1]) + d[1:] if n == "model/model.tflite" else d,
            "model/model.tflite",
        ),
        ("removed file", lambda n, d: None if n == "handler.py" else d, "handler.py"),
        (
            "edited manifest",
            lambda n, d: d.replace(b'"1.0.0"', b'"9.0.0"') if n == "edgepack.json" else d,
            "edgepack.json",
        ),
    ],
)
def test_verify_cli_refuses_tampered_artifacts(
    built: Built, tmp_path: Path, case: str, change: Any, needle: str
) -> None:
    tampered = tmp_path / "tampered.zip"
    _rewrite_zip(built.artifact(X86), tampered, change)
    result = CliRunner().invoke(cli, ["verify", str(tampered), "--key", str(built.public_key)])
    assert result.exit_code == 4, (case, result.output)
    errors = [line for line in result.output.splitlines() if line.startswith("edgepack: error:")]
    assert len(errors) == 1 and needle in errors[0], result.output


def test_verify_cli_refuses_another_key(built: Built, tmp_path: Path) -> None:
    _, other = generate_keypair(tmp_path / "other")
    result = CliRunner().invoke(cli, ["verify", str(built.artifact(X86)), "--key", str(other)])
    assert result.exit_code == 4
    assert "signature" in result.output


def test_an_op_no_converter_takes_is_one_line_naming_op_and_target(tmp_path: Path) -> None:
    """MatrixInverse has no TFLite kernel: every variant fails to convert, and the build
    says which op and which target, exit 2, and leaves nothing behind."""
    from edgepack.model.tf_env import import_tensorflow

    tf = import_tensorflow()

    class Inverse(tf.Module):  # type: ignore[name-defined]
        @tf.function(input_signature=[tf.TensorSpec((None, 3, 3), tf.float32, name="matrix")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"inverse": tf.linalg.inv(x)}

    project = tmp_path / "inverse"
    module = Inverse()
    tf.saved_model.save(module, str(project / "model"), signatures={"serving_default": module.serve})
    a = np.random.default_rng(0).random((16, 3, 3), dtype=np.float32)
    np.savez(project / "data.npz", matrix=a @ a.transpose(0, 2, 1) + 3 * np.eye(3, dtype=np.float32))
    generate_keypair(project / "dev")
    config = {
        "name": "inverse",
        "version": "1.0.0",
        "model": {"path": "model"},
        "calibration": {"path": "data.npz"},
        "validation": {"path": "data.npz"},
        "targets": ["lambda-x86_64"],
        "signing": {"key": "dev.key"},
    }
    (project / "edgepack.yaml").write_text(yaml.safe_dump(config))
    _build_fails(project, tmp_path / "dist", "target lambda-x86_64", "tf.MatrixInverse")
