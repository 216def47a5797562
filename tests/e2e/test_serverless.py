"""serverless.yml and the SAM template through real tools: the open-source Serverless CLI
(osls) packages and deploys them, cfn-lint checks what CloudFormation would get, the
official SAM transform expands template.yaml, and a moto server on 127.0.0.1 stands in for AWS.

One real lambda-x86_64 artifact of the sample is built once. osls finds moto through
``AWS_ENDPOINT_URL`` (the AWS SDK for JavaScript v3 honours it). ``osls package`` runs with
that variable pointing at a closed port where no AWS call is expected, so a call would fail.

moto ignores some settings (SnapStart is reported off, function URLs and layers from
CloudFormation are not created), and its ValidateTemplate fails on any cfn-lint warning:
those settings are checked in the CloudFormation template osls produced, not read back.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from edgepack.build import build
from edgepack.deploy_files import SAM_FILE, SERVERLESS_FILE, write_lambda_deploy_files
from edgepack.signing.keys import generate_keypair
from tests.moto_fixtures import running_moto

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
OSLS = REPO_ROOT / "node_modules" / ".bin" / "osls"
BIN = Path(sys.executable).parent
EPOCH = 1_700_000_000
ARTIFACT = "digits-1.0.0-lambda-x86_64.zip"
COMPILED = "cloudformation-template-update-stack.json"
# osls puts a DependsOn on its SnapStart alias for the function the alias already Refs;
# cfn-lint warns (W3005), CloudFormation accepts it. Not ours to fix, so not counted.
OSLS_KNOWN_WARNINGS = ("W3005",)
IMAGE_DIGEST_URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/digits@sha256:" + "ab" * 32

if not OSLS.exists():
    pytest.skip("osls is not installed: run scripts/setup.sh (npm ci)", allow_module_level=True)


# -- fixtures -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    artifact: Path
    manifest: dict[str, Any]

    def manifest_with(self, **function: Any) -> dict[str, Any]:
        data = copy.deepcopy(self.manifest)
        data["function"].update(function)
        return data


@pytest.fixture(scope="module")
def built(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("serverless-build")
    project = root / "digits"
    shutil.copytree(sample_dir, project, ignore=shutil.ignore_patterns("keys", "__pycache__"))
    generate_keypair(project / "keys" / "dev")
    result = build(project, root / "dist", ["lambda-x86_64"], epoch=EPOCH)
    assert result.ok, [r.error for r in result.results]
    artifact = root / "dist" / ARTIFACT
    with zipfile.ZipFile(artifact) as z:
        manifest = json.loads(z.read("edgepack.json"))
    return Built(artifact, manifest)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's server on 127.0.0.1 for this module."""
    with running_moto(tmp_path_factory.mktemp("moto")) as endpoint:
        yield endpoint


def aws_env(endpoint: str) -> dict[str, str]:
    """The environment osls runs in: fake credentials, and every AWS call to ``endpoint``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLS_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
        SLS_AWS_MONITORING_FREQUENCY="250",  # poll the stack every 250 ms, not every 5 s
        NODE_NO_WARNINGS="1",  # the AWS SDK's "node >= 22 soon" notice
    )
    return env


def offline_env() -> dict[str, str]:
    return aws_env(f"http://127.0.0.1:{_free_port()}")  # nothing listens there


def boto(service: str, endpoint: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


# -- helpers ------------------------------------------------------------------------------


def osls(args: list[str], service_dir: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [str(OSLS), *args], cwd=service_dir, env=env, capture_output=True, text=True, timeout=300
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"osls {' '.join(args)} failed:\n{output[-4000:]}"
    return output


def package(service_dir: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    """``osls package`` into ``service_dir/.serverless``; the compiled CloudFormation, linted."""
    osls(["package", *args], service_dir, env)
    compiled = service_dir / ".serverless" / COMPILED
    cfn_lint(compiled, ignore=OSLS_KNOWN_WARNINGS)
    data: dict[str, Any] = json.loads(compiled.read_text())
    return data


def cfn_lint(template: Path, *, ignore: tuple[str, ...] = ()) -> None:
    """cfn-lint through its Python API (one process: its start-up is seconds on every call)."""
    from cfnlint.api import ManualArgs, lint

    matches = lint(template.read_text(), config=ManualArgs(regions=["us-east-1"], ignore_checks=list(ignore)))
    assert not matches, f"cfn-lint {template.name}:\n" + "\n".join(str(m) for m in matches)


class _NoManagedPolicies:
    """The SAM transform asks IAM for managed policy ARNs only when a template names some."""

    def load(self) -> dict[str, str]:
        return {}


def sam_transform(template: Path, dest: Path) -> dict[str, Any]:
    """``template.yaml`` through the official SAM transform, as ``sam deploy`` hands it to
    CloudFormation (local code paths replaced by S3 locations, as ``sam package`` does);
    the output is written to ``dest`` and passes cfn-lint as plain CloudFormation."""
    from cfnlint.decode import decode_str
    from samtranslator.translator.transform import transform

    data, matches = decode_str(template.read_text())
    assert not matches, matches
    for resource in data["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://deploy-bucket/{Path(props[key]).name}"
    with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": "us-east-1"}):  # for AWS::Region
        expanded = transform(data, {}, _NoManagedPolicies())  # type: ignore[arg-type]
    out: dict[str, Any] = json.loads(json.dumps(expanded))
    dest.write_text(json.dumps(out, indent=1))
    cfn_lint(dest)
    return out


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def only(template: dict[str, Any], kind: str) -> dict[str, Any]:
    found = resources(template, kind)
    assert len(found) == 1, f"{kind}: {sorted(found)}"
    return next(iter(found.values()))


def render(built: Built, manifest: dict[str, Any], dist: Path, **kwargs: Any) -> Path:
    """The artifact in ``dist`` and its deploy files in ``dist/<stem>.deploy``, as the build lays them."""
    dist.mkdir(parents=True, exist_ok=True)
    artifact = dist / f"digits-1.0.0-{manifest['target']['name']}.zip"
    shutil.copyfile(built.artifact, artifact)
    dest = dist / f"{artifact.stem}.deploy"
    assert write_lambda_deploy_files(artifact, manifest, dest, **kwargs) == [
        dest / SERVERLESS_FILE,
        dest / SAM_FILE,
    ]
    return dest


def check_emf_permissions(template: dict[str, Any], function_name: str) -> None:
    """Logs on the function's log group, and no cloudwatch:PutMetricData (EMF goes through logs)."""
    text = json.dumps(template)
    assert "cloudwatch:" not in text
    statements = [
        s
        for role in resources(template, "AWS::IAM::Role").values()
        for policy in role["Properties"].get("Policies", [])
        for s in policy["PolicyDocument"]["Statement"]
    ]
    granted = {
        a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"} <= granted
    for s in statements:
        assert f"log-group:/aws/lambda/{function_name}:" in json.dumps(s["Resource"]), s


def b64_sha256(path: Path) -> str:
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


# -- packaging ----------------------------------------------------------------------------


def test_top_level_serverless_yml_packages_offline(built: Built, tmp_path: Path) -> None:
    service = tmp_path / "service"
    (service / "dist").mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "serverless.yml", service / "serverless.yml")
    shutil.copyfile(built.artifact, service / "dist" / ARTIFACT)

    template = package(service, offline_env())
    props = only(template, "AWS::Lambda::Function")["Properties"]
    assert (props["Runtime"], props["Architectures"], props["Handler"]) == (
        "python3.12",
        ["x86_64"],
        "handler.handler",
    )
    assert props["Code"]["S3Key"].endswith(f"/{ARTIFACT}")
    assert props["Environment"]["Variables"] == {
        "POWERTOOLS_SERVICE_NAME": "digits",
        "POWERTOOLS_METRICS_NAMESPACE": "edgepack/digits",
    }
    assert only(template, "AWS::Lambda::Url")["Properties"]["AuthType"] == "AWS_IAM"
    check_emf_permissions(template, "digits")

    shutil.copyfile(built.artifact, service / "dist" / "digits-1.0.0-lambda-arm64.zip")
    template = package(
        service,
        offline_env(),
        "--param=artifact=dist/digits-1.0.0-lambda-arm64.zip",
        "--param=architecture=arm64",
        "--param=runtime=python3.13",
    )
    props = only(template, "AWS::Lambda::Function")["Properties"]
    assert (props["Runtime"], props["Architectures"]) == ("python3.13", ["arm64"])
    assert props["Code"]["S3Key"].endswith("/digits-1.0.0-lambda-arm64.zip")


def test_rendered_files_for_the_built_artifact(built: Built, tmp_path: Path) -> None:
    m = built.manifest
    assert m["function"]["snapstart"] is False and m["function"]["url_auth"] == "AWS_IAM"
    deploy = render(built, m, tmp_path / "dist")

    template = package(deploy, offline_env())
    fn = only(template, "AWS::Lambda::Function")["Properties"]
    assert (fn["FunctionName"], fn["Runtime"], fn["Architectures"], fn["Handler"]) == (
        m["name"],
        m["target"]["lambda_runtime"],
        ["x86_64"],
        m["runtime"]["entrypoint"],
    )
    assert (fn["MemorySize"], fn["Timeout"]) == (m["function"]["memory_mb"], m["function"]["timeout_s"])
    assert fn["Code"]["S3Key"].endswith(f"/{ARTIFACT}")
    env = fn["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == m["telemetry"]["service"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == m["telemetry"]["namespace"]
    assert "SnapStart" not in fn and "Layers" not in fn
    assert only(template, "AWS::Lambda::Url")["Properties"]["AuthType"] == "AWS_IAM"
    assert not resources(template, "AWS::Lambda::Permission")  # nobody unsigned may call it
    check_emf_permissions(template, "digits")

    cfn_lint(deploy / SAM_FILE)
    sam = sam_transform(deploy / SAM_FILE, tmp_path / "sam.json")
    fn = only(sam, "AWS::Lambda::Function")["Properties"]
    assert (fn["FunctionName"], fn["Runtime"], fn["Architectures"], fn["Handler"]) == (
        "digits",
        "python3.12",
        ["x86_64"],
        "handler.handler",
    )
    assert fn["Code"] == {"S3Bucket": "deploy-bucket", "S3Key": ARTIFACT}
    assert fn["Environment"]["Variables"] == env
    assert only(sam, "AWS::Lambda::Url")["Properties"]["AuthType"] == "AWS_IAM"
    check_emf_permissions(sam, "digits")


def test_snapstart_applies_to_published_versions_behind_an_alias(built: Built, tmp_path: Path) -> None:
    deploy = render(built, built.manifest_with(snapstart=True), tmp_path / "dist")

    template = package(deploy, offline_env())
    fn = only(template, "AWS::Lambda::Function")["Properties"]
    assert fn["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    only(template, "AWS::Lambda::Version")
    alias = only(template, "AWS::Lambda::Alias")["Properties"]
    assert alias["Name"] == "snapstart"
    url = only(template, "AWS::Lambda::Url")["Properties"]
    assert url["TargetFunctionArn"]["Fn::Join"][1][1] == "snapstart"  # the URL calls the snapshot

    sam = sam_transform(deploy / SAM_FILE, tmp_path / "sam.json")
    assert only(sam, "AWS::Lambda::Function")["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    alias_id, alias = next(iter(resources(sam, "AWS::Lambda::Alias").items()))
    assert alias["Properties"]["Name"] == "live"
    assert only(sam, "AWS::Lambda::Url")["Properties"]["TargetFunctionArn"] == {"Ref": alias_id}


def test_url_auth_none(built: Built, tmp_path: Path) -> None:
    deploy = render(built, built.manifest_with(url_auth="NONE"), tmp_path / "dist")
    template = package(deploy, offline_env())
    assert only(template, "AWS::Lambda::Url")["Properties"]["AuthType"] == "NONE"
    permissions = [p["Properties"] for p in resources(template, "AWS::Lambda::Permission").values()]
    assert {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"} == {p["Action"] for p in permissions}
    assert all(p["Principal"] == "*" for p in permissions)
    sam = sam_transform(deploy / SAM_FILE, tmp_path / "sam.json")
    assert only(sam, "AWS::Lambda::Url")["Properties"]["AuthType"] == "NONE"


def test_arm64_rendering(built: Built, tmp_path: Path) -> None:
    manifest = copy.deepcopy(built.manifest)
    manifest["target"].update(name="lambda-arm64", arch="aarch64", lambda_runtime="python3.13")
    deploy = render(built, manifest, tmp_path / "dist")
    fn = only(package(deploy, offline_env()), "AWS::Lambda::Function")["Properties"]
    assert (fn["Runtime"], fn["Architectures"]) == ("python3.13", ["arm64"])
    assert fn["Code"]["S3Key"].endswith("/digits-1.0.0-lambda-arm64.zip")
    fn = only(sam_transform(deploy / SAM_FILE, tmp_path / "sam.json"), "AWS::Lambda::Function")["Properties"]
    assert (fn["Runtime"], fn["Architectures"]) == ("python3.13", ["arm64"])


def test_runtime_layer(built: Built, moto: str, tmp_path: Path) -> None:
    manifest = built.manifest_with(layer=True)
    layer_zip = "digits-1.0.0-lambda-x86_64.layer.zip"
    manifest["runtime"]["layer"] = {
        "file": layer_zip,
        "sha256": "0" * 64,
        "name": "digits-lambda-x86_64-deps",
    }
    dist = tmp_path / "dist"
    deploy = render(built, manifest, dist)
    with zipfile.ZipFile(dist / layer_zip, "w") as z:
        z.writestr("python/edgepack_layer_marker.py", "")

    # With a layer, osls package asks CloudFormation for the deployed layer's hash (to skip
    # re-uploading an unchanged one): it needs AWS, here moto.
    template = package(deploy, aws_env(moto))
    layer_id, layer = next(iter(resources(template, "AWS::Lambda::LayerVersion").items()))
    assert layer["Properties"]["LayerName"] == "digits-lambda-x86_64-deps"
    assert layer["Properties"]["Content"]["S3Key"].endswith(f"/{layer_zip}")
    assert layer["Properties"]["CompatibleArchitectures"] == ["x86_64"]
    assert only(template, "AWS::Lambda::Function")["Properties"]["Layers"] == [{"Ref": layer_id}]

    sam = sam_transform(deploy / SAM_FILE, tmp_path / "sam.json")
    layer_id, layer = next(iter(resources(sam, "AWS::Lambda::LayerVersion").items()))
    assert layer["Properties"]["Content"] == {"S3Bucket": "deploy-bucket", "S3Key": layer_zip}
    assert only(sam, "AWS::Lambda::Function")["Properties"]["Layers"] == [{"Ref": layer_id}]


def test_container_image(built: Built, moto: str, tmp_path: Path) -> None:
    deploy = render(built, built.manifest, tmp_path / "dist", image_uri=IMAGE_DIGEST_URI)
    fn = only(package(deploy, offline_env()), "AWS::Lambda::Function")["Properties"]
    assert (fn["PackageType"], fn["Code"]) == ("Image", {"ImageUri": IMAGE_DIGEST_URI})
    assert not {"Runtime", "Handler", "Layers"} & set(fn)
    fn = only(sam_transform(deploy / SAM_FILE, tmp_path / "sam.json"), "AWS::Lambda::Function")["Properties"]
    assert (fn["PackageType"], fn["Code"]) == ("Image", {"ImageUri": IMAGE_DIGEST_URI})

    # A tag: osls pins it to the digest ECR reports (here moto's ECR) before deploying.
    ecr = boto("ecr", moto)
    ecr.create_repository(repositoryName="digits")
    image_manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + "1" * 64,
                "size": 2,
            },
            "layers": [],
        }
    )
    digest = ecr.put_image(repositoryName="digits", imageManifest=image_manifest, imageTag="1.0.0")["image"][
        "imageId"
    ]["imageDigest"]
    tagged = "123456789012.dkr.ecr.us-east-1.amazonaws.com/digits:1.0.0"
    deploy = render(built, built.manifest, tmp_path / "tagged", image_uri=tagged)
    fn = only(package(deploy, aws_env(moto)), "AWS::Lambda::Function")["Properties"]
    assert fn["Code"] == {"ImageUri": f"123456789012.dkr.ecr.us-east-1.amazonaws.com/digits@{digest}"}


# -- deploying against moto ---------------------------------------------------------------


def _check_deployed(endpoint: str, name: str, artifact: Path, manifest: dict[str, Any], stack: str) -> None:
    status = boto("cloudformation", endpoint).describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    assert status in {"CREATE_COMPLETE", "UPDATE_COMPLETE"}, status
    config = boto("lambda", endpoint).get_function(FunctionName=name)["Configuration"]
    assert config["CodeSha256"] == b64_sha256(artifact)  # the signed zip, byte for byte
    assert (config["Runtime"], config["Architectures"], config["Handler"], config["PackageType"]) == (
        manifest["target"]["lambda_runtime"],
        ["x86_64"],
        manifest["runtime"]["entrypoint"],
        "Zip",
    )
    assert (config["MemorySize"], config["Timeout"]) == (
        manifest["function"]["memory_mb"],
        manifest["function"]["timeout_s"],
    )
    assert config["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == manifest["telemetry"]["service"]


def test_deploy_rendered_serverless_yml(built: Built, moto: str, tmp_path: Path) -> None:
    manifest = built.manifest_with(memory_mb=2048, environment={"LOG_LEVEL": "DEBUG"})
    dist = tmp_path / "dist"
    deploy = render(built, manifest, dist)
    osls(["deploy"], deploy, aws_env(moto))
    _check_deployed(moto, "digits", dist / ARTIFACT, manifest, "edgepack-digits-dev")
    config = boto("lambda", moto).get_function(FunctionName="digits")["Configuration"]
    assert config["Environment"]["Variables"]["LOG_LEVEL"] == "DEBUG"


def test_deploy_top_level_serverless_yml(built: Built, moto: str, tmp_path: Path) -> None:
    service = tmp_path / "service"
    (service / "dist").mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "serverless.yml", service / "serverless.yml")
    shutil.copyfile(built.artifact, service / "dist" / ARTIFACT)
    osls(
        [
            "deploy",
            "--stage",
            "toplevel",
            f"--param=artifact=dist/{ARTIFACT}",
            "--param=function=digits-toplevel",
        ],
        service,
        aws_env(moto),
    )
    _check_deployed(moto, "digits-toplevel", built.artifact, built.manifest, "edgepack-digits-toplevel")


def test_the_sam_check_sees_what_cfn_lint_alone_misses(built: Built, tmp_path: Path) -> None:
    """cfn-lint on the SAM template passes a bad architecture; expanded by the SAM transform, it fails."""
    deploy = render(built, built.manifest, tmp_path / "dist")
    bad = tmp_path / "bad.yaml"
    bad.write_text((deploy / SAM_FILE).read_text().replace('- "x86_64"', '- "x86"', 1))
    cfn_lint(bad)
    with pytest.raises(AssertionError, match="'x86' is not one of"):
        sam_transform(bad, tmp_path / "bad.json")
