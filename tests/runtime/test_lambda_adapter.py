"""The Lambda adapter with every event shape, bad requests, Powertools logs and EMF metrics."""

from __future__ import annotations

import base64
import copy
import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from runtime_helpers import Models, load_event, write_artifact

from edgepack.runtime.errors import ModelLoadError
from edgepack.runtime.lambda_adapter import create_handler

Handler = Callable[[Any, Any], dict[str, Any]]


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of the context object Lambda's Python runtime passes."""

    function_name: str = "digits-fn"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:digits-fn"
    aws_request_id: str = "c0ffee00-0000-4000-8000-000000000001"


CONTEXT = LambdaContext()


@pytest.fixture(scope="module")
def handler(int8_artifact: Path) -> Handler:
    return create_handler(int8_artifact)


def _direct_body() -> dict[str, Any]:
    return load_event("direct.json")


def rest_v1_event(body: str, *, method: str = "POST", b64: bool = False) -> dict[str, Any]:
    """API Gateway REST API (payload format 1.0) proxy event."""
    return {
        "resource": "/predict",
        "path": "/predict",
        "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": None,
        "pathParameters": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "httpMethod": method,
            "path": "/prod/predict",
            "requestId": "req-v1",
            "resourcePath": "/predict",
            "stage": "prod",
        },
        "body": base64.b64encode(body.encode()).decode() if b64 else body,
        "isBase64Encoded": b64,
    }


def http_v2_event(body: str, *, method: str = "POST", b64: bool = False) -> dict[str, Any]:
    event = load_event("apigw-v2.json")
    event["requestContext"]["http"]["method"] = method
    event["body"] = base64.b64encode(body.encode()).decode() if b64 else body
    event["isBase64Encoded"] = b64
    return event


def function_url_event(body: str, *, method: str = "POST", b64: bool = False) -> dict[str, Any]:
    """A Lambda Function URL event: payload format 2.0 with a lambda-url domain and no stage."""
    event = http_v2_event(body, method=method, b64=b64)
    event["routeKey"] = "$default"
    event["requestContext"].update(
        {
            "routeKey": "$default",
            "stage": "$default",
            "apiId": "urlid",
            "domainName": "urlid.lambda-url.us-east-1.on.aws",
        }
    )
    event["requestContext"]["authorizer"] = {"iam": {"accountId": "123456789012", "userId": "AIDAEXAMPLE"}}
    return event


HTTP_EVENTS = {"rest-v1": rest_v1_event, "http-v2": http_v2_event, "function-url": function_url_event}


def _emf(stdout: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]


def _logs(stdout: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" not in line]


def _metric_names(emf: dict[str, Any]) -> set[str]:
    return {m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


# -- good requests, every event shape ----------------------------------------------------


def test_direct_event(handler: Handler, tflite_models: Models) -> None:
    response = handler(_direct_body(), CONTEXT)
    assert set(response) == {"model_name", "model_version", "outputs"}
    probabilities = np.asarray(response["outputs"]["probabilities"])
    assert probabilities.shape == (1, 10)
    assert response["outputs"]["label"] == [int(np.argmax(probabilities))]


def test_direct_oip_event(handler: Handler) -> None:
    response = handler(load_event("oip.json"), CONTEXT)
    assert response["id"] == "sample-1"
    assert [o["name"] for o in response["outputs"]] == ["probabilities", "label"]
    assert response["outputs"][0]["shape"] == [2, 10] and response["outputs"][0]["datatype"] == "FP32"


def test_sample_http_api_event(handler: Handler) -> None:
    response = handler(load_event("apigw-v2.json"), CONTEXT)
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "application/json"
    body = json.loads(response["body"])
    assert np.asarray(body["outputs"]["probabilities"]).shape == (1, 10)


@pytest.mark.parametrize("b64", [False, True], ids=["json", "base64"])
@pytest.mark.parametrize("kind", sorted(HTTP_EVENTS))
def test_http_events(handler: Handler, kind: str, b64: bool) -> None:
    direct = handler(_direct_body(), CONTEXT)
    response = handler(HTTP_EVENTS[kind](json.dumps(_direct_body()), b64=b64), CONTEXT)
    assert response["statusCode"] == 200 and response["isBase64Encoded"] is False
    assert json.loads(response["body"]) == direct


@pytest.mark.parametrize("kind", sorted(HTTP_EVENTS))
def test_http_oip_body(handler: Handler, kind: str) -> None:
    oip = load_event("oip.json")
    oip["outputs"] = [{"name": "label"}]
    response = handler(HTTP_EVENTS[kind](json.dumps(oip)), CONTEXT)
    body = json.loads(response["body"])
    assert response["statusCode"] == 200
    assert body["id"] == "sample-1" and [o["name"] for o in body["outputs"]] == ["label"]


def test_get_answers_metadata_and_other_methods_are_405(handler: Handler) -> None:
    metadata = handler(http_v2_event("", method="GET"), CONTEXT)
    assert metadata["statusCode"] == 200
    assert json.loads(metadata["body"])["inputs"] == [
        {"name": "image", "datatype": "FP32", "shape": [-1, 8, 8, 1]}
    ]
    refused = handler(rest_v1_event("{}", method="DELETE"), CONTEXT)
    assert refused["statusCode"] == 405 and refused["headers"]["Allow"] == "GET, POST"
    assert json.loads(refused["body"])["error"]["code"] == "method_not_allowed"


def test_no_context_still_answers(handler: Handler) -> None:
    assert "outputs" in handler(_direct_body(), None)


# -- bad requests: 400 with a reason, and the next request is served ------------------------


def _bad_inputs(change: str) -> dict[str, Any]:
    body = _direct_body()
    image = body["inputs"]["image"]
    if change == "name":
        return {"inputs": {"img": image}}
    if change == "shape":
        return {"inputs": {"image": image[0]}}
    if change == "dtype":
        return {"inputs": {"image": [[[["x"] * 1] * 8] * 8]}}
    if change == "ragged":
        return {"inputs": {"image": [image[0], image[0][:7]]}}
    raise AssertionError(change)


BAD_BODIES = {
    "name": (lambda: json.dumps(_bad_inputs("name")), "unknown input 'img'; the model expects 'image'"),
    "shape": (lambda: json.dumps(_bad_inputs("shape")), "input 'image': shape (8, 8, 1) does not match"),
    "dtype": (
        lambda: json.dumps(_bad_inputs("dtype")),
        "input 'image': expected numbers (float32), got strings",
    ),
    "ragged": (lambda: json.dumps(_bad_inputs("ragged")), "input 'image': not a rectangular array"),
    "malformed-json": (lambda: '{"inputs": {"image": [[', "body is not valid JSON"),
    "empty": (lambda: "", "empty request body"),
    "oip-datatype": (
        lambda: json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "INT8", "data": [1]}]}),
        "datatype INT8 does not match the model's FP32",
    ),
}


@pytest.mark.parametrize("kind", sorted(HTTP_EVENTS))
@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_http_requests_are_400_and_serving_continues(handler: Handler, kind: str, case: str) -> None:
    make_body, reason = BAD_BODIES[case]
    response = handler(HTTP_EVENTS[kind](make_body()), CONTEXT)
    assert response["statusCode"] == 400, response
    error = json.loads(response["body"])["error"]
    assert error["code"] == "bad_request" and reason in error["message"]
    assert handler(HTTP_EVENTS[kind](json.dumps(_direct_body())), CONTEXT)["statusCode"] == 200


@pytest.mark.parametrize("kind", sorted(HTTP_EVENTS))
def test_bad_base64_is_400(handler: Handler, kind: str) -> None:
    event = HTTP_EVENTS[kind](json.dumps(_direct_body()), b64=True)
    event["body"] = "not*base64!"
    response = handler(event, CONTEXT)
    assert response["statusCode"] == 400
    assert "not valid base64" in json.loads(response["body"])["error"]["message"]
    event["body"] = base64.b64encode(b"\xff\xfe{").decode()
    assert "not UTF-8" in json.loads(handler(event, CONTEXT)["body"])["error"]["message"]


@pytest.mark.parametrize("case", ["name", "shape", "dtype", "ragged"])
def test_bad_direct_requests(handler: Handler, case: str) -> None:
    response = handler(_bad_inputs(case), CONTEXT)
    assert response["statusCode"] == 400
    assert response["error"]["code"] == "bad_request" and "'im" in response["error"]["message"]
    assert "outputs" in handler(_direct_body(), CONTEXT)


@pytest.mark.parametrize(
    ("event", "reason"),
    [({"instances": [1]}, "request has no 'inputs'"), ([1, 2], "request must be a JSON object")],
)
def test_unrecognised_direct_events(handler: Handler, event: Any, reason: str) -> None:
    response = handler(event, CONTEXT)
    assert response["statusCode"] == 400 and reason in response["error"]["message"]


# -- unexpected failures: 500, generic reason, logged, still serving --------------------------


def test_unexpected_error_is_500_generic_logged_and_serving_continues(
    tmp_path: Path, tflite_models: Models, capsys: pytest.CaptureFixture[str]
) -> None:
    hooks = tmp_path / "hooks.py"
    hooks.write_text(
        textwrap.dedent(
            """
            def postprocess(outputs):
                if len(outputs["probabilities"]) == 3:
                    raise RuntimeError("secret internal detail")
                return outputs
            """
        )
    )
    root = write_artifact(tmp_path / "artifact", tflite_models.fp32, precision="fp32", hooks=hooks)
    handle = create_handler(root)
    images = tflite_models.images
    assert (
        handle(http_v2_event(json.dumps({"inputs": {"image": images[:2].tolist()}})), CONTEXT)["statusCode"]
        == 200
    )
    capsys.readouterr()
    failed = handle(http_v2_event(json.dumps({"inputs": {"image": images[:3].tolist()}})), CONTEXT)
    assert failed["statusCode"] == 500
    error = json.loads(failed["body"])["error"]
    assert "secret" not in error["message"] and CONTEXT.aws_request_id in error["message"]
    direct = handle({"inputs": {"image": images[:3].tolist()}}, CONTEXT)
    assert direct["statusCode"] == 500 and direct["error"]["code"] == "internal_error"
    logged = capsys.readouterr().out
    assert "secret internal detail" in logged and "Traceback" in logged
    assert handle({"inputs": {"image": images[:1].tolist()}}, CONTEXT)["outputs"]["probabilities"]


def test_init_failure_raises_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="cannot read manifest"):
        create_handler(tmp_path)


# -- Powertools: structured logs and EMF metrics ------------------------------------------------


def test_emf_metrics_and_structured_logs(handler: Handler, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    handler(http_v2_event(json.dumps(_direct_body())), CONTEXT)
    out = capsys.readouterr().out
    (emf,) = _emf(out)
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "edgepack/digits"
    assert {"Invocations", "InferenceLatency"} <= _metric_names(emf)
    assert "Errors" not in _metric_names(emf)
    units = {m["Name"]: m["Unit"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["InferenceLatency"] == "Milliseconds" and units["Invocations"] == "Count"
    assert emf["Invocations"] == [1.0] or emf["Invocations"] == 1.0
    assert emf["service"] == "digits"

    logs = {line["message"]: line for line in _logs(out)}
    inference = logs["inference"]
    assert inference["service"] == "digits" and inference["function_name"] == "digits-fn"
    assert inference["function_request_id"] == CONTEXT.aws_request_id
    assert inference["telemetry"]["backend"] == "litert" and inference["telemetry"]["batch_size"] == 1
    assert logs["request"]["telemetry"]["protocol"] == "direct"

    handler(http_v2_event('{"inputs": '), CONTEXT)
    out = capsys.readouterr().out
    (emf,) = _emf(out)
    assert "Errors" in _metric_names(emf) and "InferenceLatency" not in _metric_names(emf)
    (error,) = [line for line in _logs(out) if line["message"] == "error"]
    assert error["level"] == "WARNING"
    assert error["telemetry"]["stage"] == "transport" and "not valid JSON" in error["telemetry"]["message"]


def test_telemetry_disabled_emits_no_metrics(
    tmp_path: Path, tflite_models: Models, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_artifact(
        tmp_path / "artifact", tflite_models.fp32, precision="fp32", telemetry={"enabled": False}
    )
    handle = create_handler(root)
    capsys.readouterr()
    assert "outputs" in handle(copy.deepcopy(_direct_body()), CONTEXT)
    out = capsys.readouterr().out
    assert _emf(out) == [] and "inference" not in out


# -- defects found by fuzzing, through every event shape ---------------------------------------

MAX_ERROR_BODY = 2048


def _oip_text(**changes: Any) -> str:
    body = load_event("oip.json")
    body["inputs"][0].update(changes)
    return json.dumps(body)


FUZZ_DEFECTS = {
    "giant-int": (
        lambda: json.dumps(_direct_body()).replace("0.375", "9" * 5000, 1),
        "an integer literal is longer than 4300 digits",
    ),
    "deep": (lambda: '{"inputs": {"image": ' + "[" * 50_000 + "]" * 50_000 + "}}", "nested too deeply"),
    "nan-literal": (lambda: json.dumps(_direct_body()).replace("0.375", "NaN", 1), "NaN is not a number"),
    "huge-shape": (lambda: _oip_text(shape=[2**64, 2**64]), "describes more than"),
    "too-many-dims": (lambda: _oip_text(shape=[1] * 40), "has 40 dimensions"),
    "datatype-list": (lambda: _oip_text(datatype=["FP32"]), "unknown datatype"),
    "bools": (lambda: json.dumps(_direct_body()).replace("0.375", "true", 1), "mixes booleans"),
    "parameters-0": (
        lambda: json.dumps({**_direct_body(), "parameters": 0}),
        "'parameters' must be an object",
    ),
    "direct-unknown-output": (
        lambda: json.dumps({**_direct_body(), "outputs": ["logits"]}),
        "unknown output 'logits' requested",
    ),
    "giant-name": (
        lambda: json.dumps({"inputs": {"n" * 5_000_000: [[0.0]]}}),
        "unknown input 'nnnn",
    ),
    "binary-input": (
        lambda: _oip_text(parameters={"binary_data_size": 512}),
        "binary tensor data is not accepted",
    ),
    "binary-output": (
        lambda: json.dumps({**load_event("oip.json"), "parameters": {"binary_data_output": True}}),
        "binary outputs are not available",
    ),
}


@pytest.mark.parametrize("b64", [False, True], ids=["json", "base64"])
@pytest.mark.parametrize("kind", sorted(HTTP_EVENTS))
@pytest.mark.parametrize("case", sorted(FUZZ_DEFECTS))
def test_fuzz_defects_are_bounded_400s(handler: Handler, kind: str, case: str, b64: bool) -> None:
    valid = HTTP_EVENTS[kind](json.dumps(_direct_body()), b64=b64)
    before = handler(valid, CONTEXT)
    make_body, reason = FUZZ_DEFECTS[case]
    response = handler(HTTP_EVENTS[kind](make_body(), b64=b64), CONTEXT)
    assert response["statusCode"] == 400, response["body"][:500]
    assert len(response["body"].encode()) <= MAX_ERROR_BODY
    error = json.loads(response["body"])["error"]
    assert error["code"] == "bad_request" and reason in error["message"], error
    assert handler(valid, CONTEXT) == before


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"inputs": {"image": [[[[10**5000]] * 8] * 8]}}, "not an array of numbers"),
        (
            {"inputs": [{"name": "image", "shape": [10**5000], "datatype": "FP32", "data": []}]},
            "describes more",
        ),
        ({"inputs": {"image": [[[[True]] * 8] * 7 + [[[0.5]] * 8]]}}, "mixes booleans"),
        ({"inputs": {"i" * 10_000_000: [[0.0]]}}, "unknown input 'iii"),
        ({"inputs": {"image": [[[[0.5]] * 8] * 8]}, "outputs": ["label", "x" * 10_000_000]}, "'xxxx"),
        (
            {"inputs": {"image": [[[[0.5]] * 8] * 8]}, "parameters": {"binary_data_output": True}},
            "binary outputs",
        ),
    ],
    ids=["giant-int", "giant-dim", "bools", "giant-name", "giant-output", "binary-output"],
)
def test_direct_invocation_defects_are_bounded_400s(handler: Handler, event: Any, reason: str) -> None:
    before = handler(_direct_body(), CONTEXT)
    response = handler(event, CONTEXT)
    assert response["statusCode"] == 400 and reason in response["error"]["message"]
    assert len(json.dumps(response)) <= MAX_ERROR_BODY
    assert handler(_direct_body(), CONTEXT) == before


def test_direct_outputs_select_through_lambda(handler: Handler) -> None:
    response = handler({**_direct_body(), "outputs": ["label"]}, CONTEXT)
    assert list(response["outputs"]) == ["label"]


@pytest.mark.parametrize(
    ("field", "value", "status", "reason"),
    [
        ("isBase64Encoded", "true", 400, "isBase64Encoded must be true or false, got 'true'"),
        ("method", 7, 400, "method must be a non-empty string, got 7"),
        ("method", "", 400, "method must be a non-empty string"),
        ("method", "P" * 1_000_000, 405, "method 'PPPP"),
    ],
)
def test_wrong_event_fields_are_bounded_4xx(
    handler: Handler, field: str, value: Any, status: int, reason: str
) -> None:
    event = rest_v1_event(json.dumps(_direct_body()))
    if field == "method":
        event["httpMethod"] = value
    else:
        event[field] = value
    response = handler(event, CONTEXT)
    assert response["statusCode"] == status and len(response["body"]) <= MAX_ERROR_BODY
    assert reason in json.loads(response["body"])["error"]["message"]
