"""The build's contracts on every outcome: one JSON document on stdout (success, refusal,
bad config, gate failure), a fallback chain that never crashes on an unloadable variant
(LiteRT, ONNX Runtime, OpenVINO), nothing unloadable in the cache, and bad input refused
with exit 2 before any work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from click.testing import CliRunner

from edgepack.build import build
from edgepack.cli.main import cli
from edgepack.model.base import ModelArtifact, ModelFormat
from edgepack.passes import register
from edgepack.passes.base import Pass, PassConfig, PassContext, unregister
from edgepack.signing.keys import generate_keypair

pytestmark = pytest.mark.slow

EPOCH = 1_700_000_000


def _project(sample_dir: Path, dest: Path, **changes: Any) -> Path:
    shutil.copytree(sample_dir, dest, ignore=shutil.ignore_patterns("keys", "__pycache__"))
    generate_keypair(dest / "keys" / "dev")
    config = yaml.safe_load((dest / "edgepack.yaml").read_text())
    config.update(changes)
    (dest / "edgepack.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def _edgepack(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess: stdout is file descriptor 1, as a user's pipe sees it."""
    exe = Path(sys.executable).with_name("edgepack")
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=900, env={**os.environ}, check=False
    )


# -- unloadable variants -------------------------------------------------------------


class _BrokenConfig(PassConfig):
    pass


class _Broken(Pass):
    """Writes a model file the target's runtime refuses to load (what a converter can do:
    LiteRT's int16x8 depthwise conv, an fp16 ONNX graph with a Cast type mismatch)."""

    config_model: ClassVar[type[PassConfig]] = _BrokenConfig
    accepts: ClassVar[frozenset[ModelFormat]] = frozenset({"keras"})
    file_name: ClassVar[str]

    def write(self, path: Path) -> None:
        path.write_bytes(b"not a model")

    def run(self, model: ModelArtifact, config: PassConfig, ctx: PassContext) -> ModelArtifact:
        path = ctx.work_dir / self.file_name
        self.write(path)
        return ModelArtifact(path=path, format=self.produces, signature=model.signature, precision="int8")


class BrokenTFLite(_Broken):
    name: ClassVar[str] = "test-broken-tflite"
    produces: ClassVar[ModelFormat] = "tflite"
    file_name = "model.tflite"


class BrokenOnnx(_Broken):
    """A valid ONNX file whose graph ONNX Runtime rejects: a float16 Cast feeding a float Add."""

    name: ClassVar[str] = "test-broken-onnx"
    produces: ClassVar[ModelFormat] = "onnx"
    file_name = "model.onnx"

    def write(self, path: Path) -> None:
        import onnx
        from onnx import TensorProto, helper

        nodes = [
            helper.make_node("Flatten", ["image"], ["flat"]),
            helper.make_node("Cast", ["flat"], ["half"], to=TensorProto.FLOAT16),
            helper.make_node("Add", ["half", "flat"], ["sum"]),
            helper.make_node("Slice", ["sum", "starts", "ends", "axes"], ["probabilities"]),
        ]
        inits = [
            helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
            helper.make_tensor("ends", TensorProto.INT64, [1], [10]),
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        ]
        graph = helper.make_graph(
            nodes,
            "broken",
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 8, 8, 1])],
            [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
            inits,
        )
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


class BrokenOpenVino(_Broken):
    name: ClassVar[str] = "test-broken-openvino"
    produces: ClassVar[ModelFormat] = "openvino"
    file_name = "model.xml"

    def write(self, path: Path) -> None:
        path.write_text("<net name='broken' version='11'><layers><layer id='0' type='Nope'/></layers></net>")
        path.with_suffix(".bin").write_bytes(b"")


@pytest.fixture(scope="module", autouse=True)
def _broken_passes() -> Iterator[None]:
    """Registered for this module's tests only: the registry is process-wide."""
    broken = (BrokenTFLite, BrokenOnnx, BrokenOpenVino)
    for cls in broken:
        register(cls.name, f"{__name__}:{cls.__name__}")
    yield
    for cls in broken:
        unregister(cls.name)


# Each backend with the cheapest target that runs it, and the target's own last (fp32) variant.
BACKENDS = {
    "litert": ("rpi-tflite", "test-broken-tflite", "fp32"),
    "onnxruntime": ("jetson-trt", "test-broken-onnx", "fp32"),
    "openvino": ("intel-openvino", "test-broken-openvino", "fp32"),
}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_an_unloadable_variant_is_a_failed_attempt_and_the_next_ships(
    backend: str, sample_dir: Path, tmp_path: Path
) -> None:
    target, broken_pass, fallback = BACKENDS[backend]
    overrides = {"variants": [{"name": "broken", "passes": [{"name": broken_pass}]}, fallback]}
    project = _project(sample_dir, tmp_path / "p", targets=[{"name": target, "overrides": overrides}])
    models_before = _cached_models()

    runner = CliRunner()
    outcome = runner.invoke(cli, ["build", str(project), "--out", str(tmp_path / "dist"), "--json", "-q"])
    assert outcome.exit_code == 0, outcome.output
    document = json.loads(outcome.stdout)
    (result,) = document["targets"]
    assert result["ok"] is True
    assert result["variant"] == fallback
    assert result["precision"] == "fp32"
    assert result["backend"] == backend
    first = result["attempts"][0]
    assert first["variant"] == "broken" and first["passed"] is False
    assert first["stage"] == "optimize"
    assert f"the {backend} runtime cannot load or run this model" in first["failures"][0]
    assert "broken" in result["given_up"]
    # The unloadable model never entered the cache: only the shipped variant's did.
    for entry in _cached_models() - models_before:
        meta = json.loads((entry / "artifact.json").read_text())
        assert meta["precision"] != "int8", f"an unloadable model was cached: {entry}"


def _cached_models() -> set[Path]:
    root = Path(os.environ["EDGEPACK_CACHE_DIR"]) / "models"
    return {p for p in root.iterdir() if (p / "artifact.json").is_file()} if root.is_dir() else set()


# -- one JSON document on stdout, whatever happens -----------------------------------


def test_json_success_with_library_chatter_is_one_document(sample_dir: Path, tmp_path: Path) -> None:
    """intel-openvino runs NNCF, which prints progress bars and INFO lines on stdout."""
    project = _project(sample_dir, tmp_path / "p")
    run = _edgepack("build", str(project), "-t", "intel-openvino", "--out", str(tmp_path / "dist"), "--json")
    assert run.returncode == 0, run.stderr[-3000:]
    document = json.loads(run.stdout)
    (result,) = document["targets"]
    assert document["ok"] is True and document["exit_code"] == 0
    assert result["ok"] and result["backend"] == "openvino"
    assert result["precision"] in {"int8", "fp16", "fp32"}


def test_json_refusal_names_the_op(tmp_path: Path, sample_dir: Path) -> None:
    from edgepack.model.tf_env import import_tensorflow

    tf = import_tensorflow()

    class Sqrtm(tf.Module):  # type: ignore[name-defined,misc]
        @tf.function(input_signature=[tf.TensorSpec((None, 4, 4), tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"y": tf.linalg.sqrtm(x)}

    project = tmp_path / "sqrtm"
    module = Sqrtm()
    tf.saved_model.save(module, str(project / "model"), signatures={"serving_default": module.serve})
    generate_keypair(project / "keys" / "dev")
    (project / "edgepack.yaml").write_text(
        "name: sqrtm\nversion: 1.0.0\nmodel: {path: model}\ntargets: [jetson-trt]\n"
        "signing: {key: keys/dev.key}\n"
    )
    run = _edgepack("build", str(project), "--out", str(tmp_path / "dist"), "--json")
    assert run.returncode == 2, run.stderr[-3000:]
    document = json.loads(run.stdout)
    assert document["ok"] is False and document["exit_code"] == 2
    (result,) = document["targets"]
    assert "Sqrtm" in result["error"] or "sqrtm" in result["error"].lower()
    assert "\n" not in result["error"]
    assert not (tmp_path / "dist").exists() or not any((tmp_path / "dist").iterdir())


def test_json_bad_config_is_a_document_too(sample_dir: Path, tmp_path: Path) -> None:
    project = _project(sample_dir, tmp_path / "p", version="one")
    run = _edgepack("build", str(project), "--out", str(tmp_path / "dist"), "--json")
    assert run.returncode == 2
    document = json.loads(run.stdout)
    assert document == {
        "ok": False,
        "exit_code": 2,
        "targets": [],
        "error": f"{project / 'edgepack.yaml'}: version: expected a numeric version like 1.4.0",
    }
    assert not (tmp_path / "dist").exists(), "a refused build created its output directory"


def test_json_gate_failure_lists_every_attempt(sample_dir: Path, tmp_path: Path) -> None:
    validation = yaml.safe_load((sample_dir / "edgepack.yaml").read_text())["validation"]
    validation["thresholds"] = {"max_abs_error": 0.0}  # nothing but the original model passes
    project = _project(sample_dir, tmp_path / "p", validation=validation)
    runner = CliRunner()
    outcome = runner.invoke(
        cli, ["build", str(project), "-t", "jetson-trt", "--out", str(tmp_path / "dist"), "--json", "-q"]
    )
    assert outcome.exit_code == 1
    document = json.loads(outcome.stdout)
    (result,) = document["targets"]
    assert result["ok"] is False
    assert [a["variant"] for a in result["attempts"]] == ["int8", "int8-mixed", "fp16", "fp32"]
    assert "no variant passed the fidelity gate" in result["error"]
    assert list((tmp_path / "dist").iterdir()) == []


# -- bad input at the contract, before any work ---------------------------------------


@pytest.mark.parametrize("kind", ["existing file", "under a file"])
def test_an_unusable_output_directory_is_refused_first(kind: str, sample_dir: Path, tmp_path: Path) -> None:
    project = _project(sample_dir, tmp_path / "p")
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    out = blocker if kind == "existing file" else blocker / "dist"
    with pytest.raises(Exception) as caught:
        build(project, out, ["jetson-trt"], epoch=EPOCH)
    error = caught.value
    assert getattr(error, "exit_code", None) == 2
    assert f"--out {out}" in error.hint()  # type: ignore[attr-defined]
    assert blocker.read_text() == "a file"


def test_a_variant_whose_format_the_backend_cannot_run_is_refused(sample_dir: Path, tmp_path: Path) -> None:
    variants = [{"name": "wrong", "passes": [{"name": "onnx-convert"}]}]
    project = _project(
        sample_dir, tmp_path / "p", targets=[{"name": "rpi-tflite", "overrides": {"variants": variants}}]
    )
    runner = CliRunner()
    outcome = runner.invoke(cli, ["build", str(project), "--out", str(tmp_path / "dist")])
    assert outcome.exit_code == 2
    assert "variant wrong ends with a onnx model; the target's litert runtime runs tflite models" in (
        outcome.stderr
    )
    assert not (tmp_path / "dist").exists()
