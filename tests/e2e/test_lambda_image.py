"""Too big for a Lambda zip: the build says so in one line, naming the sizes and the next step,
and ``function.package: image`` builds Lambda's container-image form: an OCI image whose
entrypoint is awslambdaric, run here under podman against edgepack's own Lambda Runtime API."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from edgepack.cli.main import cli
from edgepack.signing.keys import generate_keypair

pytestmark = pytest.mark.slow


def _project(sample_dir: Path, dest: Path, overrides: dict[str, Any], layer: bool = False) -> Path:
    shutil.copytree(sample_dir, dest, ignore=shutil.ignore_patterns("keys", "__pycache__"))
    generate_keypair(dest / "keys" / "dev")
    config = dest / "edgepack.yaml"
    data = yaml.safe_load(config.read_text())
    data["targets"] = [{"name": "lambda-x86_64", "overrides": overrides}]
    if layer:
        data["function"] = {"layer": True}
    config.write_text(yaml.safe_dump(data))
    return dest


@pytest.mark.parametrize("layer", [False, True], ids=["zip", "layer-split"])
def test_over_the_unzipped_budget_names_sizes_and_the_image_form(
    sample_dir: Path, tmp_path: Path, layer: bool
) -> None:
    project = _project(sample_dir, tmp_path / "digits", {"limits": {"unzipped_bytes": 1_000_000}}, layer)
    out = tmp_path / "dist"
    result = CliRunner().invoke(cli, ["build", str(project), "--out", str(out)])
    assert result.exit_code == 2, result.output
    line = next(line for line in result.output.splitlines() if "over the 1.0 MB unzipped limit" in line)
    assert line.startswith("target lambda-x86_64: ") or "lambda-x86_64" in line
    assert "MB" in line and "largest:" in line
    assert "container-image form" in line and "function.package: image" in line
    if layer:
        assert "function " in line and " + layer " in line  # both counted, as Lambda does
    # Nothing partial is left behind, the layer zip included.
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []


def _image_project(sample_dir: Path, dest: Path, function: dict[str, Any]) -> Path:
    project = _project(sample_dir, dest, {})
    config = project / "edgepack.yaml"
    data = yaml.safe_load(config.read_text())
    data["function"] = function
    config.write_text(yaml.safe_dump(data))
    return project


REPOSITORY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/digits"


def test_the_image_form_runs_under_awslambdaric_and_answers_like_the_model(
    sample_dir: Path, tmp_path: Path, debian_base_image: Any, podman: Any
) -> None:
    import json
    import subprocess
    import uuid

    import numpy as np

    from edgepack.build import build
    from edgepack.invoke.runtime_api import Invocation, RuntimeAPIServer
    from edgepack.runtime.predictor import Predictor
    from edgepack.runtime.trust.reader import verify_and_extract
    from edgepack.signing.keys import load_public_keys

    project = _image_project(
        sample_dir, tmp_path / "digits", {"package": "image", "image_repository": REPOSITORY}
    )
    out = tmp_path / "dist"
    result = build(project, out, ["lambda-x86_64"], epoch=1_700_000_000, base_image=debian_base_image.layout)
    assert result.ok, result.results[0].error
    image = result.results[0].image
    assert image is not None and "awslambdaric" not in image["note"]
    assert (
        f"push: skopeo copy oci:{out / 'digits-1.0.0-lambda-x86_64' / 'oci'}:1.0.0 docker://{REPOSITORY}:1.0.0"
        in (image["note"])
    )
    outputs = out / "digits-1.0.0-lambda-x86_64"
    keys_dir = project / "keys"
    keys = load_public_keys([keys_dir / "dev.pub"])
    verified = subprocess.run(
        [sys.executable, "-m", "edgepack", "verify", str(outputs), "--key", str(keys_dir / "dev.pub")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    copied = subprocess.run(
        ["skopeo", "copy", f"oci:{outputs / 'oci'}:1.0.0", f"oci:{tmp_path / 'copy'}:1.0.0"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    template = (outputs / "deploy" / "template.yaml").read_text()  # CloudFormation tags: read as text
    assert "PackageType: Image" in template and f'ImageUri: "{REPOSITORY}:1.0.0"' in template

    tree = tmp_path / "tree"
    verify_and_extract(out / "digits-1.0.0-lambda-x86_64.tar.gz", tree, keys)
    event = json.loads((sample_dir / "events" / "direct.json").read_text())
    expected = Predictor.from_artifact(tree).predict(
        {"image": np.asarray(event["inputs"]["image"], np.float32)}
    )
    with RuntimeAPIServer() as api:
        env = {
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "digits",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_REGION": "us-east-1",
        }
        proc = subprocess.Popen(
            podman.run_args(f"oci:{outputs / 'oci'}:1.0.0", env=env, options=["--name", "edgepack-lambda"]),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            invocation = Invocation(
                request_id=str(uuid.uuid4()),
                event=json.dumps(event).encode(),
                timeout_ms=60_000,
                function_arn="arn:aws:lambda:us-east-1:123456789012:function:digits",
                trace_id="Root=1-00000000-000000000000000000000000",
            )
            api.submit(invocation)
            assert invocation.done.wait(180), "the image never answered the Runtime API"
        finally:
            subprocess.run([*podman.command(), "stop", "-t", "5", "edgepack-lambda"], capture_output=True)
            proc.wait(timeout=60)
    assert invocation.outcome == "response", invocation.body
    body = json.loads(invocation.body)
    np.testing.assert_array_equal(
        np.asarray(body["outputs"]["probabilities"], np.float32), expected["probabilities"]
    )


def test_the_image_form_without_a_base_image_is_refused_before_any_work(
    sample_dir: Path, tmp_path: Path
) -> None:
    project = _image_project(sample_dir, tmp_path / "digits", {"package": "image"})
    out = tmp_path / "dist"
    result = CliRunner().invoke(cli, ["build", str(project), "--out", str(out)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("edgepack: error:")]
    assert len(errors) == 1 and "function.package: image needs a base image" in errors[0]
    assert not out.exists()


def test_the_image_form_with_a_layer_is_refused_naming_the_field(sample_dir: Path, tmp_path: Path) -> None:
    project = _image_project(sample_dir, tmp_path / "digits", {"package": "image", "layer": True})
    result = CliRunner().invoke(cli, ["build", str(project), "--out", str(tmp_path / "dist")])
    assert result.exit_code == 2, result.output
    assert "function" in result.output and "zips only" in result.output
