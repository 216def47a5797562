"""``edgepack deploy lambda`` / ``deploy layer`` against a real moto server over HTTP.

moto cannot run functions: the smoke test runs the exact zip through the local invoke.
moto accepts almost anything, so the tests check what edgepack SENT (botocore hooks).
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from conftest import Built, Recorder, boto, python312_or_skip
from deploy_helpers import aws_error, edit_manifest, resign, times

from edgepack.cli.main import cli
from edgepack.deploy import checks
from edgepack.deploy.artifact import open_verified
from edgepack.deploy.aws import Aws, RetryPolicy
from edgepack.deploy.errors import DeployRequestError, SmokeTestError, ThrottledError
from edgepack.deploy.pipeline import LambdaOptions, deploy_lambda
from edgepack.deploy.smoke import compare
from edgepack.signing.keys import load_public_keys

pytestmark = pytest.mark.slow


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, ["deploy", *map(str, args)], catch_exceptions=False)


def code_sha(path: Path) -> str:
    return base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def deploy(built: Built, artifact: Path, *extra: str | Path, role: str | None = None) -> Result:
    args: list[str | Path] = ["lambda", artifact, "--key", built.public_key, "--function", "digits"]
    if role:
        args += ["--role", role]
    return run(*args, *extra)


# -- create, update, versions, aliases -------------------------------------------------------


def test_create_sends_the_manifest_values_and_tags(built: Built, role_arn: str, recorder: Recorder) -> None:
    result = deploy(built, built.v1, "--skip-smoke", "--json", role=role_arn)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["version"] == "1" and summary["created"] is True
    assert summary["routing"] == "live -> 1 (100%)"
    (sent,) = recorder.params("CreateFunction")
    assert sent["Runtime"] == "python3.12" and sent["Architectures"] == ["x86_64"]
    assert sent["Handler"] == "handler.handler" and sent["Role"] == role_arn
    assert (sent["MemorySize"], sent["Timeout"]) == (1024, 10)
    assert sent["Environment"]["Variables"] == {
        "POWERTOOLS_SERVICE_NAME": "digits",
        "POWERTOOLS_METRICS_NAMESPACE": "edgepack/digits",
    }
    assert sent["Code"]["ZipFile"] == built.v1.read_bytes()
    assert "SnapStart" not in sent and sent["Layers"] == []
    lam = boto("lambda")
    tags = lam.get_function(FunctionName="digits")["Tags"]
    assert tags["edgepack:artifact-sha256"] == hashlib.sha256(built.v1.read_bytes()).hexdigest()
    assert tags["edgepack:version"] == "1.0.0" and tags["edgepack:target"] == "lambda-x86_64"
    version = lam.get_function_configuration(FunctionName="digits", Qualifier="1")
    assert version["CodeSha256"] == code_sha(built.v1)
    assert recorder.params("PublishVersion")[0]["CodeSha256"] == code_sha(built.v1)


def test_update_publishes_a_new_version_and_moves_the_alias(
    built: Built, role_arn: str, recorder: Recorder
) -> None:
    assert deploy(built, built.v1, "--skip-smoke", role=role_arn).exit_code == 0
    result = deploy(built, built.v2, "--skip-smoke", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["version"], summary["created"], summary["previous"]) == ("2", False, "1")
    assert "updated the code" in result.stderr
    alias = boto("lambda").get_alias(FunctionName="digits", Name="live")
    assert alias["FunctionVersion"] == "2"
    tags = boto("lambda").get_function(FunctionName="digits")["Tags"]
    assert tags["edgepack:version"] == "1.0.1"
    # Each step is a line on stderr; the summary alone is on stdout.
    assert result.stderr.count("\n") >= 4 and "deploy:" not in result.stdout


def test_same_artifact_again_uploads_no_code(built: Built, role_arn: str, recorder: Recorder) -> None:
    assert deploy(built, built.v1, "--skip-smoke", role=role_arn).exit_code == 0
    result = deploy(built, built.v1, "--skip-smoke", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["uploaded_bytes"] == 0
    assert "UpdateFunctionCode" not in recorder.operations()


def test_canary_promote_and_rollback(built: Built, role_arn: str, recorder: Recorder) -> None:
    assert deploy(built, built.v1, "--skip-smoke", role=role_arn).exit_code == 0
    result = deploy(built, built.v2, "--skip-smoke", "--canary", "10", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["routing"] == "live -> 1 (90%), 2 (10%)"
    sent = recorder.params("UpdateAlias")[-1]
    assert sent["FunctionVersion"] == "1"
    assert sent["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.1}}
    alias = boto("lambda").get_alias(FunctionName="digits", Name="live")
    assert alias["FunctionVersion"] == "1"
    assert alias["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.1}

    # --promote with the artifact: only if the canary runs exactly this code.
    result = run("lambda", built.v1, "--key", built.public_key, "--function", "digits", "--promote")
    assert result.exit_code == 2 and "not this artifact" in result.output
    result = run("lambda", built.v2, "--key", built.public_key, "--function", "digits", "--promote", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["routing"] == "live -> 2 (100%)"
    alias = boto("lambda").get_alias(FunctionName="digits", Name="live")
    assert alias["FunctionVersion"] == "2"
    assert not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")
    assert recorder.params("UpdateAlias")[-1]["RoutingConfig"] == {"AdditionalVersionWeights": {}}

    result = run("lambda", "--function", "digits", "--rollback", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == "1"
    assert boto("lambda").get_alias(FunctionName="digits", Name="live")["FunctionVersion"] == "1"


def test_rollback_aborts_a_canary_in_progress(built: Built, role_arn: str, recorder: Recorder) -> None:
    assert deploy(built, built.v1, "--skip-smoke", role=role_arn).exit_code == 0
    assert deploy(built, built.v2, "--skip-smoke", "--canary", "25").exit_code == 0
    result = run("lambda", "--function", "digits", "--rollback")
    assert result.exit_code == 0, result.output
    alias = boto("lambda").get_alias(FunctionName="digits", Name="live")
    assert alias["FunctionVersion"] == "1"
    assert not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")


def test_rollback_to_a_version_that_no_longer_exists_is_refused(
    built: Built, role_arn: str, recorder: Recorder
) -> None:
    assert deploy(built, built.v1, "--skip-smoke", role=role_arn).exit_code == 0
    lam = boto("lambda")
    lam.update_alias(
        FunctionName="digits", Name="live", FunctionVersion="1", Description="edgepack previous=7"
    )
    result = run("lambda", "--function", "digits", "--rollback")
    assert result.exit_code == 2 and "previous version 7 no longer exists" in result.output
    assert "UpdateAlias" not in recorder.operations()


def test_large_zip_goes_through_s3(built: Built, role_arn: str, recorder: Recorder) -> None:
    keys = load_public_keys([built.public_key])
    options = LambdaOptions(
        alias="live", function="digits", role=role_arn, bucket="edgepack-code", smoke=False, direct_limit=1024
    )
    result = deploy_lambda(built.v1, keys, options)
    (sent,) = recorder.params("CreateFunction")
    key = f"edgepack/digits/{hashlib.sha256(built.v1.read_bytes()).hexdigest()}.zip"
    assert sent["Code"] == {"S3Bucket": "edgepack-code", "S3Key": key}
    assert "CreateBucket" in recorder.operations()
    stored = boto("s3").get_object(Bucket="edgepack-code", Key=key)["Body"].read()
    assert stored == built.v1.read_bytes() and result.code is not None and result.code.via == "s3"
    # With a bucket, S3 below the limit too (raw bytes, not base64 in JSON).
    deploy_lambda(
        built.v2, keys, LambdaOptions(alias="live", function="digits", bucket="edgepack-code", smoke=False)
    )
    assert set(recorder.params("UpdateFunctionCode")[0]) >= {"S3Bucket", "S3Key"}
    # Without a bucket the same zip is refused before any call.
    recorder.calls.clear()
    with pytest.raises(DeployRequestError, match="pass --bucket"):
        deploy_lambda(
            built.v1, keys, LambdaOptions(alias="live", function="digits", smoke=False, direct_limit=1024)
        )
    assert recorder.calls == []


def test_snapstart_is_in_the_request_sent(
    built: Built, role_arn: str, recorder: Recorder, tmp_path: Path
) -> None:
    snap = _variant(built, tmp_path, lambda m: m["function"].update(snapstart=True))
    assert deploy(built, snap, "--skip-smoke", role=role_arn).exit_code == 0
    assert recorder.params("CreateFunction")[0]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    # Turned off again on the next deploy of an artifact without it (moto reports it off anyway).
    assert deploy(built, built.v2, "--skip-smoke").exit_code == 0


# -- layers ---------------------------------------------------------------------------------


def test_layer_split_publishes_then_reuses_the_layer(built: Built, role_arn: str, recorder: Recorder) -> None:
    layer_zip = built.split_v1.with_name(built.split_v1.name.replace(".zip", ".layer.zip"))
    assert layer_zip.is_file()
    result = deploy(built, built.split_v1, "--skip-smoke", "--json", role=role_arn)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    (published,) = recorder.params("PublishLayerVersion")
    assert published["CompatibleRuntimes"] == ["python3.12"]
    assert published["CompatibleArchitectures"] == ["x86_64"]
    assert published["Content"]["ZipFile"] == layer_zip.read_bytes()
    assert recorder.params("CreateFunction")[0]["Layers"] == [summary["layer"]]
    assert summary["uploaded_bytes"] == layer_zip.stat().st_size + built.split_v1.stat().st_size

    # A model-only redeploy (another version, same packages): only the function zip goes up.
    recorder.calls.clear()
    sent_before = recorder.sent_bytes
    result = deploy(built, built.split_v2, "--skip-smoke", "--json")
    assert result.exit_code == 0, result.output
    assert "PublishLayerVersion" not in recorder.operations()
    assert json.loads(result.stdout)["uploaded_bytes"] == built.split_v2.stat().st_size
    assert recorder.sent_bytes - sent_before < built.split_v2.stat().st_size + 100_000
    assert recorder.params("UpdateFunctionConfiguration")[0]["Layers"] == [summary["layer"]]


def test_deploy_layer_command_publishes_then_reuses(built: Built, aws_env: str, recorder: Recorder) -> None:
    layer_zip = built.split_v1.with_name(built.split_v1.name.replace(".zip", ".layer.zip"))
    first = run("layer", layer_zip, "--key", built.public_key)
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == "arn:aws:lambda:us-east-1:123456789012:layer:digits-lambda-x86_64-deps:1"
    again = run("layer", layer_zip, "--key", built.public_key, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["reused"] is True
    assert len(recorder.params("PublishLayerVersion")) == 1
    # A function zip is not a layer.
    wrong = run("layer", built.v1, "--key", built.public_key)
    assert wrong.exit_code == 2 and "not a layer zip" in wrong.output


def test_layer_arn_overrides_the_artifacts_layer(built: Built, role_arn: str, recorder: Recorder) -> None:
    shared = boto("lambda").publish_layer_version(
        LayerName="shared-deps", Content={"ZipFile": built.v1.read_bytes()}, CompatibleRuntimes=["python3.12"]
    )
    arn = shared["LayerVersionArn"]
    result = deploy(built, built.split_v1, "--skip-smoke", "--layer", arn, role=role_arn)
    assert result.exit_code == 0, result.output
    assert recorder.params("CreateFunction")[0]["Layers"] == [arn]
    assert "PublishLayerVersion" not in recorder.operations()
    # A layer version that does not exist is refused before anything is created.
    recorder.calls.clear()
    missing = f"{arn.rsplit(':', 1)[0]}:9"
    result = deploy(built, built.split_v2, "--skip-smoke", "--layer", missing)
    assert result.exit_code == 2 and f"layer {missing}" in result.output
    assert not {"UpdateFunctionConfiguration", "UpdateFunctionCode"} & set(recorder.operations())


def test_a_layer_zip_that_is_not_the_recorded_one_is_refused(
    built: Built, role_arn: str, recorder: Recorder, tmp_path: Path
) -> None:
    for src in built.split_v1.parent.glob("*.zip"):
        (tmp_path / src.name).write_bytes(src.read_bytes())
    function = tmp_path / built.split_v1.name
    layer = tmp_path / built.split_v1.name.replace(".zip", ".layer.zip")
    other = built.split_v2.with_name(built.split_v2.name.replace(".zip", ".layer.zip"))
    layer.write_bytes(other.read_bytes())  # signed, but not the one the function names
    result = deploy(built, function, "--skip-smoke", role=role_arn)
    assert result.exit_code == 4 and "sha256" in result.output
    assert recorder.calls == []


# -- smoke test -----------------------------------------------------------------------------


def test_smoke_test_runs_the_exact_zip_before_any_upload(
    built: Built, role_arn: str, recorder: Recorder
) -> None:
    python312_or_skip()
    result = deploy(built, built.split_v1, role=role_arn)
    assert result.exit_code == 0, result.output
    assert "smoke test passed" in result.stderr


def test_failing_smoke_test_stops_the_deploy(
    built: Built, role_arn: str, recorder: Recorder, tmp_path: Path
) -> None:
    python312_or_skip()

    def wrong_sample(root: Path) -> None:
        with np.load(root / "sample.npz") as data:
            arrays = dict(data)
        arrays["output_0"] = np.roll(arrays["output_0"], 1, axis=-1)
        np.savez(root / "sample.npz", **arrays)

    bad = resign(built.v1, tmp_path / "digits-bad.zip", built.private_key, wrong_sample)
    result = deploy(built, bad, role=role_arn)
    assert result.exit_code == 1 and "smoke test failed" in result.output
    assert not {"CreateFunction", "PutObject", "PublishLayerVersion"} & set(recorder.operations())


def test_compare_lists_every_failure() -> None:
    recorded = {"p": np.array([[0.1, 0.9]]), "q": np.array([1.0])}
    assert compare(recorded, {"outputs": {"p": [[0.1, 0.9]], "q": [1.0]}}) == 0.0
    with pytest.raises(SmokeTestError, match=r"'p' differs.*'q' missing"):
        compare(recorded, {"outputs": {"p": [[0.9, 0.1]]}})


# -- refusals before any request ------------------------------------------------------------


def test_tampered_artifact_is_refused_before_any_api_call(
    built: Built, role_arn: str, recorder: Recorder, tmp_path: Path
) -> None:
    tampered = tmp_path / "digits-tampered.zip"
    with zipfile.ZipFile(built.v1) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "handler.py":
                data += b"\nimport os  # injected\n"
            dst.writestr(info, data)
    result = deploy(built, tampered, role=role_arn)
    assert result.exit_code == 4 and "handler.py" in result.output
    assert recorder.calls == [] and recorder.sent_bytes == 0


def test_unsigned_artifact_and_wrong_key_are_refused(
    built: Built, role_arn: str, recorder: Recorder, tmp_path: Path
) -> None:
    unsigned = tmp_path / "digits-unsigned.zip"
    with zipfile.ZipFile(built.v1) as src, zipfile.ZipFile(unsigned, "w") as dst:
        for info in src.infolist():
            if info.filename != "attestation.dsse.json":
                dst.writestr(info, src.read(info))
    assert deploy(built, unsigned, role=role_arn).exit_code == 4
    wrong_key = run("lambda", built.v1, "--key", built.other_key, "--function", "digits", "--role", role_arn)
    assert wrong_key.exit_code == 4
    no_key = run("lambda", built.v1, "--function", "digits", "--role", role_arn)
    assert no_key.exit_code == 2 and "--key" in no_key.output
    assert recorder.calls == []


def _variant(built: Built, tmp_path: Path, change: Any) -> Path:
    """The small function zip of the layer split (re-signing 80 MB takes seconds), without its
    layer reference, changed and signed again: for checks that never run it."""

    def apply(manifest: dict[str, Any]) -> None:
        manifest["runtime"].pop("layer")
        change(manifest)

    return resign(built.split_v1, tmp_path / "digits-variant.zip", built.private_key, edit_manifest(apply))


@pytest.mark.parametrize(
    ("change", "args", "named"),
    [
        (None, ["--function", "bad name!"], "function name 'bad name!'"),
        (None, ["--alias", "123"], "alias name '123'"),
        (None, ["--alias", "a" * 129], "alias name"),
        (None, ["--canary", "0"], "canary percent 0.0"),
        (None, ["--canary", "100"], "canary percent 100.0"),
        (None, ["--canary", "150"], "canary percent 150.0"),
        (None, ["--role", "arn:aws:iam::123:role/x"], "role ARN"),
        (None, ["--layer", "arn:aws:lambda:us-east-1:123456789012:layer:x"], "layer ARN"),
        (None, ["--bucket", "Bad_Bucket"], "S3 bucket"),
        (None, ["--region", "mars-1"], "region 'mars-1'"),
        (lambda m: m["target"].update(lambda_runtime="python9.9"), [], "runtime 'python9.9'"),
        (lambda m: m["target"].update(arch="riscv64"), [], "architecture 'riscv64'"),
        (lambda m: m["function"].update(memory_mb=64), [], "memory (MB) 64"),
        (lambda m: m["function"].update(memory_mb=10241), [], "memory (MB) 10241"),
        (lambda m: m["function"].update(timeout_s=901), [], "timeout (s) 901"),
        (lambda m: m["function"].update(timeout_s=0), [], "timeout (s) 0"),
        (lambda m: m["function"].update(environment={"1BAD": "x"}), [], "environment variable '1BAD'"),
        (lambda m: m["function"].update(environment={"AWS_REGION": "x"}), [], "'AWS_REGION'"),
        (lambda m: m["function"].update(environment={"BIG": "x" * 5000}), [], "environment"),
        (
            lambda m: m.update(
                target={**m["target"], "lambda_runtime": "python3.11"},
                function={**m["function"], "snapstart": True},
            ),
            [],
            "SnapStart",
        ),
        (lambda m: m["runtime"].update(entrypoint="nodots"), [], "handler 'nodots'"),
    ],
)
def test_every_invalid_value_exits_2_before_any_request(
    built: Built, role_arn: str, recorder: Recorder, tmp_path: Path, change: Any, args: list[str], named: str
) -> None:
    artifact = _variant(built, tmp_path, change) if change else built.v1
    base = ["lambda", artifact, "--key", built.public_key, "--skip-smoke", "--role", role_arn]
    if "--function" not in args:
        base += ["--function", "digits"]
    result = run(*base, *args)
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert recorder.calls == []


def test_missing_role_for_a_new_function_exits_2(built: Built, aws_env: str, recorder: Recorder) -> None:
    result = deploy(built, built.v1, "--skip-smoke")
    assert result.exit_code == 2 and "--role" in result.output
    assert recorder.operations() == ["GetFunction"]


def test_canary_weights_must_be_valid_numbers() -> None:
    assert checks.canary_weight(10) == 0.1
    assert checks.canary_weight(0.001) == 0.00001
    for bad in (0, -1, 100, 1e9, float("nan")):
        with pytest.raises(DeployRequestError):
            checks.canary_weight(bad)


def test_zip_over_the_direct_limit_without_bucket(built: Built) -> None:
    zip_ = open_verified(built.v1, load_public_keys([built.public_key]))
    checks.check_zip_size(zip_.size, inline=True)
    with pytest.raises(DeployRequestError, match="direct upload limit"):
        checks.check_zip_size(zip_.size, inline=True, limit=zip_.size - 1)


# -- AWS faults -------------------------------------------------------------------------------


def test_missing_credentials_exit_2_naming_how_to_provide_them(
    built: Built, aws_env: str, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = deploy(built, built.v1, "--skip-smoke")
    assert result.exit_code == 2
    assert "AWS_ACCESS_KEY_ID" in result.output and "AWS_PROFILE" in result.output
    assert recorder.calls == []


def test_access_denied_names_the_action(built: Built, role_arn: str, recorder: Recorder) -> None:
    recorder.faults.append(
        times(1, aws_error(403, "AccessDeniedException", "not allowed"), operation="CreateFunction")
    )
    result = deploy(built, built.v1, "--skip-smoke", role=role_arn)
    assert result.exit_code == 1 and "lambda:CreateFunction" in result.output


def test_throttling_is_retried_with_backoff(built: Built, role_arn: str, recorder: Recorder) -> None:
    recorder.faults.append(times(3, aws_error(429, "TooManyRequestsException", "Rate exceeded")))
    slept: list[float] = []
    aws = Aws(retry=RetryPolicy(attempts=5, base_s=0.5, cap_s=4.0, sleep=slept.append))
    options = LambdaOptions(alias="live", function="digits", role=role_arn, smoke=False)
    result = deploy_lambda(built.v1, load_public_keys([built.public_key]), options, aws=aws)
    assert result.version == "1" and aws.retries == 3
    assert len(slept) == 3 and all(0 <= s <= min(4.0, 0.5 * 2**i) for i, s in enumerate(slept))
    # Bounded: a service that never stops throttling fails after the set attempts.
    recorder.faults.append(times(100, aws_error(400, "ThrottlingException", "Rate exceeded")))
    never = Aws(retry=RetryPolicy(attempts=4, sleep=slept.append))
    with pytest.raises(ThrottledError, match="after 4 attempts"):
        deploy_lambda(built.v2, load_public_keys([built.public_key]), options, aws=never)


def test_failed_function_state_is_a_clear_error(built: Built, role_arn: str, recorder: Recorder) -> None:
    assert deploy(built, built.v1, "--skip-smoke", role=role_arn).exit_code == 0
    seen = [0]

    def failed(parsed: dict[str, Any], **_: Any) -> None:
        seen[0] += 1
        if seen[0] > 1:  # the state before the update is fine; the update fails
            parsed["LastUpdateStatus"] = "Failed"
            parsed["LastUpdateStatusReason"] = "layer too large"
            parsed["LastUpdateStatusReasonCode"] = "InvalidConfiguration"

    recorder.after.append(("after-call.lambda.GetFunctionConfiguration", failed))
    recorder.calls.clear()
    result = deploy(built, built.v2, "--skip-smoke")
    assert result.exit_code == 1
    assert "update of function digits failed" in result.output and "layer too large" in result.output
    assert "PublishVersion" not in recorder.operations()
