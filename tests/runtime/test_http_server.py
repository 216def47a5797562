"""The HTTP server over real sockets: tritonclient, raw requests, signals, several models."""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from http_helpers import (
    RawClient,
    ServerProcess,
    http_request,
    renamed_artifact,
    run_main,
    run_server,
)
from runtime_helpers import Models, write_artifact

from edgepack.runtime.http_auth import token_digest
from edgepack.runtime.predictor import Predictor

tritonclient_http = pytest.importorskip("tritonclient.http")

SLOW_HOOKS = """
import time

def preprocess(inputs):
    if "image" in inputs and float(inputs["image"].ravel()[0]) == 7.0:
        time.sleep(2.0)  # a slow request, marked by its first pixel
    return inputs
"""

FAILING_HOOKS = """
def postprocess(outputs):
    raise RuntimeError("secret internals /etc/model-key")
"""


@pytest.fixture(scope="module")
def server(
    fp32_artifact: Path, int8_artifact: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """fp32 as ``digits`` and int8 (with the sample hooks: a ``label`` output) as ``digits-int8`` 2.0.0."""
    tmp = tmp_path_factory.mktemp("server")
    int8 = renamed_artifact(int8_artifact, tmp / "int8", "digits-int8", "2.0.0")
    with run_server(str(fp32_artifact), str(int8), log_path=tmp / "server.log") as proc:
        yield proc


@pytest.fixture(scope="module")
def fp32_predictor(fp32_artifact: Path) -> Predictor:
    return Predictor.from_artifact(fp32_artifact)


@pytest.fixture(scope="module")
def int8_predictor(int8_artifact: Path) -> Predictor:
    return Predictor.from_artifact(int8_artifact)


def _client(server: ServerProcess) -> object:
    return tritonclient_http.InferenceServerClient(f"127.0.0.1:{server.port}")


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read() or b"null")
    finally:
        conn.close()


def _post(port: int, path: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, object]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=data, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read() or b"null")
    finally:
        conn.close()


def _oip(images: np.ndarray) -> dict[str, object]:
    return {
        "inputs": [
            {
                "name": "image",
                "shape": list(images.shape),
                "datatype": "FP32",
                "data": images.ravel().tolist(),
            }
        ]
    }


# -- tritonclient ---------------------------------------------------------------------------


def test_health_and_metadata_through_tritonclient(server: ServerProcess) -> None:
    client = _client(server)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits") and client.is_model_ready("digits-int8", "2.0.0")
    assert not client.is_model_ready("nope")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("digits")
    assert meta["name"] == "digits" and meta["versions"] == ["1.0.0"] and meta["platform"] == "litert"
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 8, 8, 1]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    assert client.get_model_metadata("digits-int8", "2.0.0")["versions"] == ["2.0.0"]


def test_json_infer_through_tritonclient_equals_the_predictor(
    server: ServerProcess, tflite_models: Models, fp32_predictor: Predictor
) -> None:
    images = tflite_models.images[:4]
    client = _client(server)
    tensor = tritonclient_http.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images, binary_data=False)
    wanted = tritonclient_http.InferRequestedOutput("probabilities", binary_data=False)
    result = client.infer("digits", [tensor], outputs=[wanted], request_id="r-1")
    expected = fp32_predictor.predict({"image": images})["probabilities"]
    got = result.as_numpy("probabilities")
    assert got.shape == (4, 10)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert result.get_response()["id"] == "r-1"
    assert result.get_response()["model_version"] == "1.0.0"


def test_binary_infer_through_tritonclient_equals_the_predictor(
    server: ServerProcess, tflite_models: Models, int8_predictor: Predictor
) -> None:
    images = tflite_models.images[:5]
    client = _client(server)
    tensor = tritonclient_http.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images, binary_data=True)
    outputs = [
        tritonclient_http.InferRequestedOutput("probabilities", binary_data=True),
        tritonclient_http.InferRequestedOutput("label", binary_data=True),
    ]
    result = client.infer("digits-int8", [tensor], model_version="2.0.0", outputs=outputs)
    expected = int8_predictor.predict({"image": images})["probabilities"]
    np.testing.assert_array_equal(result.as_numpy("probabilities"), expected)
    np.testing.assert_array_equal(result.as_numpy("label"), np.argmax(expected, axis=-1))
    assert result.as_numpy("label").dtype == np.int64


def test_binary_inputs_with_json_outputs(
    server: ServerProcess, tflite_models: Models, fp32_predictor: Predictor
) -> None:
    images = tflite_models.images[5:7]
    tensor = tritonclient_http.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images, binary_data=True)
    result = _client(server).infer(
        "digits",
        [tensor],
        outputs=[tritonclient_http.InferRequestedOutput("probabilities", binary_data=False)],
    )
    expected = fp32_predictor.predict({"image": images})["probabilities"]
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, rtol=1e-6, atol=1e-7)


# -- refusals -------------------------------------------------------------------------------


def _assert_still_serving(port: int, images: np.ndarray, expected: np.ndarray) -> None:
    status, body = _post(port, "/v2/models/digits/infer", _oip(images))
    assert status == 200
    assert isinstance(body, dict)
    got = np.reshape(body["outputs"][0]["data"], expected.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def _bad_body_cases(images: np.ndarray) -> list[tuple[str, bytes, dict[str, str], int, str]]:
    good = _oip(images)

    def variant(**tensor: object) -> bytes:
        body = json.loads(json.dumps(good))
        body["inputs"][0].update(tensor)
        return json.dumps(body).encode()

    data = images.astype(np.float32).tobytes()
    header = json.dumps(
        {"inputs": [{"name": "image", "shape": [2, 8, 8, 1], "datatype": "FP32",
                     "parameters": {"binary_data_size": len(data)}}]}
    ).encode()  # fmt: skip
    return [
        ("wrong input name", variant(name="pixels"), {}, 400, "pixels"),
        ("wrong shape", variant(shape=[2, 4, 4, 4]), {}, 400, "shape"),
        ("wrong datatype", variant(datatype="INT32"), {}, 400, "datatype"),
        ("data count", variant(shape=[3, 8, 8, 1]), {}, 400, "elements"),
        ("malformed JSON", b'{"inputs": [', {}, 400, "JSON"),
        ("not UTF-8", b'{"inputs": "\xff\xfe"}', {}, 400, ""),
        ("empty body", b"", {}, 400, ""),
        (
            "binary size mismatch",
            header + data[:-4],
            {"Inference-Header-Content-Length": str(len(header))},
            400,
            "",
        ),
        ("header length past body", header, {"Inference-Header-Content-Length": "999999"}, 400, "Inference"),
        ("compressed body", b"\x1f\x8b", {"Content-Encoding": "gzip"}, 415, "compressed"),
    ]


def test_bad_requests_get_a_reason_and_the_server_keeps_serving(
    server: ServerProcess, tflite_models: Models, fp32_predictor: Predictor
) -> None:
    images = tflite_models.images[:2]
    expected = fp32_predictor.predict({"image": images})["probabilities"]
    client = RawClient(server.port)
    for label, body, headers, status, words in _bad_body_cases(images):
        answer = client.request(http_request("POST", "/v2/models/digits/infer", body, headers))
        assert answer.status == status, (label, answer.body)
        reason = answer.json()["error"]
        assert isinstance(reason, str) and "\n" not in reason and len(reason) <= 300, label
        assert words in reason, (label, reason)
        _assert_still_serving(server.port, images, expected)
    client.close()


@pytest.mark.parametrize(
    ("request_bytes", "status", "words"),
    [
        (http_request("POST", "/v2/models/nope/infer", b"{}"), 404, "unknown model 'nope'"),
        (http_request("POST", "/v2/models/digits/versions/9/infer", b"{}"), 404, "no version '9'"),
        (http_request("GET", "/v2/models/digits/versions/9"), 404, "no version"),
        (http_request("GET", "/v3/anything"), 404, "no route"),
        (http_request("GET", "/v2/models/digits/explain"), 404, "no route"),
        (http_request("GET", "/v2/models/digits/infer"), 405, "use POST"),
        (http_request("DELETE", "/v2/models/digits"), 405, "use GET"),
        (http_request("POST", "/metrics", b"x"), 405, "use GET"),
        (http_request("POST", "/v2/models/digits/infer", b"{}", length=False), 411, "Content-Length"),
        (
            b"POST /v2/models/digits/infer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            411,
            "chunked",
        ),
        (
            b"POST /v2/models/digits/infer HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            400,
            "Transfer-Encoding",
        ),
        (b"POST /v2/models/digits/infer HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400, "Content-Length"),
        (b"GET /v2 HTTP/1.1\r\nX-Long: " + b"a" * 40000 + b"\r\n\r\n", 431, "too large"),
        (b"GET /v2 HTTP/2.0\r\n\r\n", 400, "HTTP version"),
        (b"BLAH\r\n\r\n", 400, "request line"),
        (b"GET /v2 HTTP/1.1\r\n folded\r\n\r\n", 400, "header"),
    ],
    ids=lambda v: v[:30] if isinstance(v, bytes | str) else str(v),
)
def test_http_refusals(
    server: ServerProcess,
    tflite_models: Models,
    fp32_predictor: Predictor,
    request_bytes: bytes,
    status: int,
    words: str,
) -> None:
    answer = RawClient(server.port).request(request_bytes)
    assert answer.status == status, answer.body
    assert words in answer.json()["error"]
    images = tflite_models.images[:1]
    _assert_still_serving(server.port, images, fp32_predictor.predict({"image": images})["probabilities"])


def test_oversize_body_is_refused_before_it_is_read(tmp_path: Path, fp32_artifact: Path) -> None:
    with run_server(str(fp32_artifact), "--max-body-bytes", "1000", log_path=tmp_path / "log") as proc:
        client = RawClient(proc.port)
        # Only the head is sent: the answer must come without the 50 MB the head announces.
        answer = client.request(b"POST /v2/models/digits/infer HTTP/1.1\r\nContent-Length: 50000000\r\n\r\n")
        assert answer.status == 413 and "over the limit of 1000" in answer.json()["error"]
        assert answer.headers["connection"] == "close"
        # Expect: 100-continue gets the refusal instead of the go-ahead.
        answer = RawClient(proc.port).request(
            b"POST /v2/models/digits/infer HTTP/1.1\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n"
        )
        assert answer.status == 413
        assert _get(proc.port, "/v2/health/ready")[0] == 200


def test_expect_continue_gets_the_go_ahead(server: ServerProcess, tflite_models: Models) -> None:
    body = json.dumps(_oip(tflite_models.images[:1])).encode()
    client = RawClient(server.port)
    client.send(
        b"POST /v2/models/digits/infer HTTP/1.1\r\nExpect: 100-continue\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    assert client.sock is not None
    client.sock.settimeout(5)
    assert client.sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    client.send(body)
    assert client.read_response().status == 200


def test_keep_alive_and_pipelining(server: ServerProcess, tflite_models: Models) -> None:
    body = json.dumps(_oip(tflite_models.images[:1])).encode()
    client = RawClient(server.port)
    client.send(
        http_request("GET", "/v2/health/live") + http_request("POST", "/v2/models/digits/infer", body)
    )
    assert client.read_response().json() == {"live": True}
    assert client.read_response().status == 200
    sock = client.sock
    assert client.request(http_request("GET", "/v2")).status == 200
    assert client.sock is sock  # the same connection all along
    answer = client.request(http_request("GET", "/v2", headers={"Connection": "close"}))
    assert answer.status == 200 and client.sock is None


def test_internal_errors_are_generic_and_logged(
    tmp_path: Path, tflite_models: Models, fp32_artifact: Path
) -> None:
    hooks = tmp_path / "hooks.py"
    hooks.write_text(FAILING_HOOKS)
    root = write_artifact(tmp_path / "failing", tflite_models.fp32, precision="fp32", hooks=hooks)
    with run_server(str(root), log_path=tmp_path / "log") as proc:
        status, body = _post(proc.port, "/v2/models/digits/infer", _oip(tflite_models.images[:1]))
        assert status == 500
        assert body == {"error": "internal error; see the server log"}
        assert _get(proc.port, "/v2/health/live")[0] == 200
        records = [r for r in proc.logs() if r.get("level") == "error"]
    assert records and "secret internals" in records[0]["traceback"]
    assert records[0]["msg"] == "internal error"


# -- several models, startup refusals, probe, config ---------------------------------------------


def test_two_models_and_version_routes(server: ServerProcess, tflite_models: Models) -> None:
    body = _oip(tflite_models.images[:2])
    for path in (
        "/v2/models/digits/infer",
        "/v2/models/digits/versions/1.0.0/infer",
        "/v2/models/digits-int8/infer",
        "/v2/models/digits-int8/versions/2.0.0/infer",
    ):
        status, answer = _post(server.port, path, body)
        assert status == 200, (path, answer)
        assert isinstance(answer, dict)
        assert answer["model_name"] == path.split("/")[3]
    _, int8 = _post(server.port, "/v2/models/digits-int8/infer", body)
    assert isinstance(int8, dict) and [o["name"] for o in int8["outputs"]] == ["probabilities", "label"]
    assert _post(server.port, "/v2/models/digits-int8/versions/1.0.0/infer", body)[0] == 404
    startup = next(r for r in server.logs() if r.get("msg") == "listening")
    assert [m["name"] for m in startup["models"]] == ["digits", "digits-int8"]
    assert startup["auth"] == "none" and startup["host"] == "127.0.0.1"


def test_duplicate_model_names_are_refused(fp32_artifact: Path, int8_artifact: Path) -> None:
    result = run_main(str(fp32_artifact), str(int8_artifact), "--port", "0")
    assert result.returncode == 2
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and lines[0]["msg"] == "duplicate model name"
    assert "'digits'" in lines[0]["error"] and "model loaded" not in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["/nonexistent/artifact"], "cannot read manifest"),
        (["--workers", "0", "ROOT"], "--workers"),
        (["--port", "70000", "ROOT"], "--port"),
    ],
)
def test_bad_startup_input_exits_2(fp32_artifact: Path, args: list[str], words: str) -> None:
    result = run_main(*[str(fp32_artifact) if a == "ROOT" else a for a in args])
    assert result.returncode == 2
    assert words in result.stderr


def test_environment_config_and_probe(tmp_path: Path, fp32_artifact: Path) -> None:
    proc = ServerProcess(
        [str(fp32_artifact), "--access-log"],
        tmp_path / "log",
        env={"EDGEPACK_PORT": "0", "EDGEPACK_WORKERS": "3", "EDGEPACK_MAX_BODY_BYTES": "4096"},
    )
    with proc:
        startup = next(r for r in proc.logs() if r.get("msg") == "listening")
        assert startup["workers"] == 3 and startup["max_body_bytes"] == 4096
        assert run_main("probe", "--port", str(proc.port)).returncode == 0
        access = [r for r in proc.logs() if r.get("msg") == "request"]
        assert access[-1]["path"] == "/v2/health/ready" and access[-1]["status"] == 200
    assert proc.proc is not None and proc.proc.returncode == 0
    assert run_main("probe", "--port", str(proc.port), "--timeout", "1").returncode == 1


def test_sigterm_lets_a_request_in_flight_finish(tmp_path: Path, tflite_models: Models) -> None:
    hooks = tmp_path / "hooks.py"
    hooks.write_text(SLOW_HOOKS)
    root = write_artifact(tmp_path / "slow", tflite_models.fp32, precision="fp32", hooks=hooks)
    proc = run_server(str(root), log_path=tmp_path / "log")
    with proc:
        idle = RawClient(proc.port)
        assert idle.request(http_request("GET", "/v2/health/live")).status == 200  # an idle keep-alive
        images = np.full((1, 8, 8, 1), 7.0, np.float32)
        outcome: dict[str, object] = {}

        def slow_request() -> None:
            outcome["answer"] = _post(proc.port, "/v2/models/digits/infer", _oip(images))

        thread = threading.Thread(target=slow_request)
        thread.start()
        time.sleep(0.7)  # the request is in the slow hook now
        started = time.monotonic()
        assert proc.proc is not None
        proc.proc.send_signal(15)
        thread.join(30)
        assert proc.wait(30) == 0
        assert time.monotonic() - started < 10
        status, body = outcome["answer"]  # type: ignore[misc]
        assert status == 200 and isinstance(body, dict) and len(body["outputs"][0]["data"]) == 10
        assert idle.sock is not None and idle.sock.recv(10) == b""  # the idle connection was closed
    messages = [r["msg"] for r in proc.logs()]
    assert "shutting down" in messages and messages[-1] == "stopped"
    shutting = next(r for r in proc.logs() if r["msg"] == "shutting down")
    assert shutting["in_flight"] == 1


# -- access -------------------------------------------------------------------------------------


def test_bearer_tokens(tmp_path: Path, fp32_artifact: Path, tflite_models: Models) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"digits": [token_digest("s3cret-token")]}))
    body = _oip(tflite_models.images[:1])
    path = "/v2/models/digits/infer"
    with run_server(str(fp32_artifact), "--auth-tokens", str(tokens), log_path=tmp_path / "log") as proc:
        status, answer = _post(proc.port, path, body)
        assert status == 401 and "missing bearer token" in answer["error"]  # type: ignore[index]
        assert _post(proc.port, path, body, {"Authorization": "Basic abc"})[0] == 401
        assert _post(proc.port, path, body, {"Authorization": "Bearer wrong"})[0] == 403
        assert _get(proc.port, "/v2/models/digits", {"Authorization": "Bearer wrong"})[0] == 403
        assert _post(proc.port, path, body, {"Authorization": "Bearer s3cret-token"})[0] == 200
        client = tritonclient_http.InferenceServerClient(f"127.0.0.1:{proc.port}")
        assert client.is_server_ready() and client.is_model_ready("digits")  # health stays open
        meta = client.get_model_metadata("digits", headers={"Authorization": "Bearer s3cret-token"})
        assert meta["name"] == "digits"
        conn = http.client.HTTPConnection("127.0.0.1", proc.port)
        conn.request("GET", "/metrics")
        metrics = conn.getresponse().read().decode()
        startup = next(r for r in proc.logs() if r.get("msg") == "listening")
    assert startup["auth"] == "bearer"
    assert 'edgepack_errors_total{model="digits",reason="unauthorized"} 2' in metrics
    assert 'edgepack_errors_total{model="digits",reason="forbidden"} 2' in metrics
    assert 'edgepack_requests_total{model="digits",encoding="json",status="401"} 2' in metrics
    assert "s3cret-token" not in (tmp_path / "log").read_text()


def test_bad_tokens_file_exits_2(tmp_path: Path, fp32_artifact: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"digits": ["plain-text-token"]}))
    result = run_main(str(fp32_artifact), "--auth-tokens", str(tokens), "--port", "0")
    assert result.returncode == 2 and "sha256 hex digests" in result.stderr


def test_connections_past_the_limit_get_503(tmp_path: Path, fp32_artifact: Path) -> None:
    with run_server(str(fp32_artifact), "--max-connections", "1", log_path=tmp_path / "log") as proc:
        first = RawClient(proc.port)
        assert first.request(http_request("GET", "/v2/health/live")).status == 200
        answer = RawClient(proc.port).request(http_request("GET", "/v2/health/live"))
        assert answer.status == 503 and "too many connections" in answer.json()["error"]
        first.close()
        deadline = time.monotonic() + 5
        while True:  # the slot frees once the server has seen the close
            answer = RawClient(proc.port).request(http_request("GET", "/v2/health/live"))
            if answer.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert answer.status == 200


def test_serves_from_inside_an_artifact_with_only_runtime_packages(
    tmp_path: Path, fp32_artifact: Path, tflite_models: Models, fp32_predictor: Predictor
) -> None:
    """``python -S -m edgepack_runtime.http_server`` with only numpy and LiteRT importable."""
    import numpy

    site_packages = Path(numpy.__file__).resolve().parents[1]
    site = tmp_path / "site"
    site.mkdir()
    for entry in ["numpy", "numpy.libs", "ai_edge_litert"] + [
        p.name for p in site_packages.glob("ai_edge_litert-*.dist-info")
    ]:
        if (site_packages / entry).exists():
            (site / entry).symlink_to(site_packages / entry)
    server = ServerProcess([str(fp32_artifact), "--port", "0"], tmp_path / "log", env={})
    server.command = [
        sys.executable, "-S", "-c",
        f"import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p] + "
        f"[{str(fp32_artifact)!r}, {str(site)!r}]; import runpy; "
        "runpy.run_module('edgepack_runtime.http_server', run_name='__main__')",
    ]  # fmt: skip
    with server.start():
        images = tflite_models.images[:3]
        status, body = _post(server.port, "/v2/models/digits/infer", _oip(images))
        assert status == 200 and isinstance(body, dict)
        expected = fp32_predictor.predict({"image": images})["probabilities"]
        np.testing.assert_allclose(np.reshape(body["outputs"][0]["data"], (3, 10)), expected, rtol=1e-6)
    assert server.proc is not None and server.proc.returncode == 0
