"""Deploy files rendered from a manifest: golden output, every value from the manifest,
refusals naming the field, and an atomic swap of the output directory.

Whether osls and cfn-lint accept the files (and a deploy against moto) is tests/e2e/test_serverless.py.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgepack.deploy_files import SAM_FILE, SERVERLESS_FILE, write_lambda_deploy_files
from edgepack.errors import PackagingError

GOLDEN = Path(__file__).parent / "golden" / "lambda-deploy"
ARTIFACT = "digits-1.0.0-lambda-x86_64.zip"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/digits@sha256:" + "ab" * 32

# The fields of a lambda-x86_64 manifest of the sample that the deploy files read.
MANIFEST: dict[str, Any] = {
    "schema": "edgepack.manifest/v1",
    "name": "digits",
    "version": "1.0.0",
    "target": {"name": "lambda-x86_64", "kind": "lambda", "arch": "x86_64", "lambda_runtime": "python3.12"},
    "runtime": {"backend": "litert", "entrypoint": "handler.handler"},
    "telemetry": {"enabled": True, "namespace": "edgepack/digits", "service": "digits"},
    "function": {
        "name": None,
        "memory_mb": 1024,
        "timeout_s": 10,
        "environment": {},
        "snapstart": False,
        "url_auth": "AWS_IAM",
        "layer": False,
    },
}


def manifest(**function: Any) -> dict[str, Any]:
    data = copy.deepcopy(MANIFEST)
    data["function"].update(function)
    return data


def arm64(data: dict[str, Any]) -> dict[str, Any]:
    data["target"].update(name="lambda-arm64", arch="aarch64", lambda_runtime="python3.13")
    return data


def with_layer(data: dict[str, Any]) -> dict[str, Any]:
    data["function"]["layer"] = True
    layer_file = f"digits-1.0.0-{data['target']['name']}.layer.zip"
    data["runtime"]["layer"] = {"file": layer_file, "sha256": "0" * 64, "name": "digits-runtime"}
    return data


def render(tmp_path: Path, data: dict[str, Any], **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Render for dist/<artifact> into dist/<stem>.deploy; (serverless.yml, SAM template) parsed."""
    dist = tmp_path / "dist"
    artifact = dist / f"digits-1.0.0-{data['target']['name']}.zip"
    dest = dist / f"{artifact.stem}.deploy"
    written = write_lambda_deploy_files(artifact, data, dest, **kwargs)
    assert written == [dest / SERVERLESS_FILE, dest / SAM_FILE]
    return yaml.safe_load((dest / SERVERLESS_FILE).read_text()), cfn_yaml((dest / SAM_FILE).read_text())


def cfn_yaml(text: str) -> dict[str, Any]:
    """A CloudFormation YAML document with its short-form tags (!Ref, !GetAtt, !Sub) kept."""

    class Loader(yaml.SafeLoader):
        pass

    def tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        value = loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None
        return {f"!{suffix}": value}

    Loader.add_multi_constructor("!", tag)
    data: dict[str, Any] = yaml.load(text, Loader=Loader)  # a SafeLoader subclass
    return data


# -- golden files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("sample", MANIFEST),
        (
            "arm64-snapstart-layer",
            with_layer(arm64(manifest(snapstart=True, environment={"LOG_LEVEL": "DEBUG"}, memory_mb=2048))),
        ),
    ],
)
def test_rendered_files_match_golden(tmp_path: Path, case: str, data: dict[str, Any]) -> None:
    dist = tmp_path / "dist"
    artifact = dist / f"digits-1.0.0-{data['target']['name']}.zip"
    dest = dist / f"{artifact.stem}.deploy"
    for path in write_lambda_deploy_files(artifact, data, dest):
        golden = GOLDEN / case / path.name
        if os.environ.get("EDGEPACK_UPDATE_GOLDEN") == "1":
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(path.read_text())
        assert path.read_text() == golden.read_text(), f"{case}/{path.name} differs from its golden file"


# -- values from the manifest -----------------------------------------------------------


def test_zip_function_values_come_from_the_manifest(tmp_path: Path) -> None:
    sls, sam = render(tmp_path, manifest(environment={"LOG_LEVEL": "DEBUG"}, timeout_s=30, memory_mb=512))
    fn = sls["functions"]["predict"]
    assert (sls["provider"]["runtime"], sls["provider"]["architecture"]) == ("python3.12", "x86_64")
    assert (fn["name"], fn["handler"], fn["package"]["artifact"]) == (
        "digits",
        "handler.handler",
        f"../{ARTIFACT}",
    )
    assert (sls["provider"]["memorySize"], sls["provider"]["timeout"]) == (512, 30)
    environment = {
        "LOG_LEVEL": "DEBUG",
        "POWERTOOLS_SERVICE_NAME": "digits",
        "POWERTOOLS_METRICS_NAMESPACE": "edgepack/digits",
    }
    assert sls["provider"]["environment"] == environment
    assert fn["url"] == {"authorizer": "aws_iam"}
    assert "snapStart" not in fn and "layers" not in sls

    props = sam["Resources"]["Function"]["Properties"]
    assert sam["Transform"] == "AWS::Serverless-2016-10-31"
    assert (props["PackageType"], props["CodeUri"], props["Handler"], props["Runtime"]) == (
        "Zip",
        f"../{ARTIFACT}",
        "handler.handler",
        "python3.12",
    )
    assert (props["Architectures"], props["MemorySize"], props["Timeout"]) == (["x86_64"], 512, 30)
    assert props["Environment"]["Variables"] == environment
    assert props["FunctionUrlConfig"] == {"AuthType": "AWS_IAM"}
    assert "SnapStart" not in props and "AutoPublishAlias" not in props


def test_function_name_and_telemetry_names(tmp_path: Path) -> None:
    data = manifest(name="digits-prod")
    data["telemetry"] = {"enabled": True, "namespace": "acme/ml", "service": "digit-reader"}
    sls, sam = render(tmp_path, data)
    assert sls["service"] == "edgepack-digits-prod"
    assert sls["functions"]["predict"]["name"] == "digits-prod"
    assert sam["Resources"]["Function"]["Properties"]["FunctionName"] == "digits-prod"
    assert sam["Resources"]["LogGroup"]["Properties"]["LogGroupName"] == "/aws/lambda/digits-prod"
    env = sls["provider"]["environment"]
    assert (env["POWERTOOLS_SERVICE_NAME"], env["POWERTOOLS_METRICS_NAMESPACE"]) == (
        "digit-reader",
        "acme/ml",
    )


def test_telemetry_names_default_like_the_handler(tmp_path: Path) -> None:
    data = manifest()
    data["telemetry"] = {"enabled": True}
    sls, _ = render(tmp_path, data)
    env = sls["provider"]["environment"]
    assert (env["POWERTOOLS_SERVICE_NAME"], env["POWERTOOLS_METRICS_NAMESPACE"]) == (
        "digits",
        "edgepack/digits",
    )


def test_arm64_is_lambdas_name_for_aarch64(tmp_path: Path) -> None:
    sls, sam = render(tmp_path, arm64(manifest()))
    assert (sls["provider"]["architecture"], sls["provider"]["runtime"]) == ("arm64", "python3.13")
    props = sam["Resources"]["Function"]["Properties"]
    assert (props["Architectures"], props["Runtime"]) == (["arm64"], "python3.13")
    assert props["CodeUri"] == "../digits-1.0.0-lambda-arm64.zip"


def test_url_auth_none_opens_the_url(tmp_path: Path) -> None:
    sls, sam = render(tmp_path, manifest(url_auth="NONE"))
    assert sls["functions"]["predict"]["url"] is True  # osls: AuthType NONE plus the public permissions
    assert sam["Resources"]["Function"]["Properties"]["FunctionUrlConfig"] == {"AuthType": "NONE"}


def test_snapstart_publishes_versions_behind_an_alias(tmp_path: Path) -> None:
    sls, sam = render(tmp_path, manifest(snapstart=True))
    assert sls["functions"]["predict"]["snapStart"] is True
    props = sam["Resources"]["Function"]["Properties"]
    assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert props["AutoPublishAlias"] == "live"


def test_layer_from_runtime_layer(tmp_path: Path) -> None:
    sls, sam = render(tmp_path, with_layer(manifest()))
    layer = sls["layers"]["runtime"]
    assert layer["name"] == "digits-runtime"
    assert layer["package"]["artifact"] == "../digits-1.0.0-lambda-x86_64.layer.zip"
    assert (layer["compatibleRuntimes"], layer["compatibleArchitectures"]) == (["python3.12"], ["x86_64"])
    assert sls["functions"]["predict"]["layers"] == [{"Ref": "RuntimeLambdaLayer"}]
    props = sam["Resources"]["RuntimeLayer"]["Properties"]
    assert (props["LayerName"], props["ContentUri"]) == (
        "digits-runtime",
        "../digits-1.0.0-lambda-x86_64.layer.zip",
    )
    assert sam["Resources"]["Function"]["Properties"]["Layers"] == [{"!Ref": "RuntimeLayer"}]


def test_image_package_type(tmp_path: Path) -> None:
    sls, sam = render(tmp_path, manifest(), image_uri=IMAGE)
    fn = sls["functions"]["predict"]
    assert fn["image"] == IMAGE
    assert not {"handler", "package"} & set(fn) and "runtime" not in sls["provider"] and "package" not in sls
    assert sls["provider"]["architecture"] == "x86_64"
    props = sam["Resources"]["Function"]["Properties"]
    assert (props["PackageType"], props["ImageUri"]) == ("Image", IMAGE)
    assert not {"CodeUri", "Handler", "Runtime", "Layers"} & set(props)


def test_emf_needs_only_the_log_group(tmp_path: Path) -> None:
    _, sam = render(tmp_path, manifest())
    role = sam["Resources"]["FunctionRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert statements == [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": {
                "!Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}"
                ":log-group:/aws/lambda/digits:*"
            },
        }
    ]
    assert sam["Resources"]["Function"]["Properties"]["Role"] == {"!GetAtt": "FunctionRole.Arn"}


# -- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (manifest(snapstart=True), {"image_uri": IMAGE}, r"function\.snapstart: .*container images"),
        (with_layer(manifest()), {"image_uri": IMAGE}, r"runtime\.layer: .*container images"),
        (manifest(), {"image_uri": "docker.io/library/digits:1"}, "Lambda runs images from ECR"),
        (manifest(environment={"GREETING": "${env:HOME}"}), {}, r"environment\.GREETING contains '\$\{'"),
        (
            manifest(environment={"POWERTOOLS_SERVICE_NAME": "other"}),
            {},
            r"function\.environment\.POWERTOOLS_SERVICE_NAME: 'other' contradicts the telemetry",
        ),
        (manifest(environment={"AWS_REGION": "eu-west-1"}), {}, r"function\.environment: 'AWS_REGION'"),
        (manifest(url_auth="aws_iam"), {}, r"function\.url_auth: 'aws_iam' is not one of AWS_IAM, NONE"),
        (manifest(memory_mb=64), {}, r"function\.memory_mb: 64 is not an integer in \[128, 10240\]"),
        (manifest(name="digits prod"), {}, r"function\.name: 'digits prod' is not a Lambda function name"),
    ],
)
def test_refusals_name_the_field(tmp_path: Path, data: dict[str, Any], kwargs: Any, message: str) -> None:
    with pytest.raises(PackagingError, match=message):
        render(tmp_path, data, **kwargs)
    assert not (tmp_path / "dist").exists() or not any((tmp_path / "dist").iterdir())


def test_snapstart_needs_python_312(tmp_path: Path) -> None:
    data = manifest(snapstart=True)
    data["target"]["lambda_runtime"] = "python3.11"
    with pytest.raises(PackagingError, match=r"function\.snapstart: .*python3\.12 or newer, not python3\.11"):
        render(tmp_path, data)


def test_not_a_lambda_artifact(tmp_path: Path) -> None:
    data = manifest()
    del data["function"]
    with pytest.raises(
        PackagingError, match="manifest function: missing: the artifact was not built for a Lambda"
    ):
        render(tmp_path, data)
    data = manifest()
    data["target"]["arch"] = "riscv64"
    with pytest.raises(PackagingError, match=r"target\.arch: 'riscv64'"):
        render(tmp_path, data)


def test_an_image_artifact_needs_its_uri(tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match="deploys from ECR: pass its image URI"):
        write_lambda_deploy_files(tmp_path / "digits-image", manifest(), tmp_path / "out")


# -- atomic output ------------------------------------------------------------------------


def test_rerender_replaces_the_whole_set(tmp_path: Path) -> None:
    dest = tmp_path / "dist" / "digits-1.0.0-lambda-x86_64.deploy"
    render(tmp_path, manifest(memory_mb=512))
    (dest / "stale.txt").write_text("from an older edgepack")
    render(tmp_path, manifest(memory_mb=2048))
    assert sorted(p.name for p in dest.iterdir()) == [SERVERLESS_FILE, SAM_FILE]
    assert "memorySize: 2048" in (dest / SERVERLESS_FILE).read_text()
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]  # no temporary left beside it


def test_a_refused_render_leaves_the_previous_set(tmp_path: Path) -> None:
    dest = tmp_path / "dist" / "digits-1.0.0-lambda-x86_64.deploy"
    render(tmp_path, manifest(memory_mb=512))
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    with pytest.raises(PackagingError):
        render(tmp_path, manifest(memory_mb=512, url_auth="OPEN"))
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]
