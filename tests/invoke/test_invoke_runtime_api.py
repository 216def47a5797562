"""The local Lambda Runtime API, driven over HTTP the way a runtime drives it."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator

import pytest

from edgepack.invoke.runtime_api import MAX_RESPONSE_BYTES, Invocation, RuntimeAPIServer

NEXT = "/2018-06-01/runtime/invocation/next"


@pytest.fixture
def server() -> Iterator[RuntimeAPIServer]:
    with RuntimeAPIServer() as api:
        yield api


def _connect(api: RuntimeAPIServer) -> http.client.HTTPConnection:
    host, port = api.address.split(":")
    assert host == "127.0.0.1"
    return http.client.HTTPConnection(host, int(port), timeout=10)


def _invocation(request_id: str = "req-1", event: bytes = b'{"a": 1}') -> Invocation:
    return Invocation(
        request_id=request_id,
        event=event,
        timeout_ms=3000,
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        trace_id="Root=1-00000000-000000000000000000000000;Sampled=0",
    )


def test_next_blocks_until_an_event_then_response_is_recorded(server: RuntimeAPIServer) -> None:
    conn = _connect(server)  # one keep-alive connection for the whole exchange, as libcurl does
    got: dict[str, object] = {}

    def poll() -> None:
        conn.request("GET", NEXT)
        response = conn.getresponse()
        got["status"] = response.status
        got["headers"] = dict(response.getheaders())
        got["body"] = response.read()

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.2)
    assert poller.is_alive()  # blocked: nothing queued yet
    assert server.first_next_at is not None  # ... but init is over: the runtime asked for work

    inv = _invocation()
    before_ms = int(time.time() * 1000)
    server.submit(inv)
    poller.join(timeout=5)
    assert got["status"] == 200 and got["body"] == b'{"a": 1}'
    headers = got["headers"]
    assert isinstance(headers, dict)
    assert headers["Lambda-Runtime-Aws-Request-Id"] == "req-1"
    assert headers["Lambda-Runtime-Invoked-Function-Arn"].endswith(":function:f")
    assert headers["Lambda-Runtime-Trace-Id"].startswith("Root=1-")
    assert before_ms + 2900 <= int(headers["Lambda-Runtime-Deadline-Ms"]) <= before_ms + 3000 + 1000
    assert inv.handed_out_at is not None

    conn.request("POST", "/2018-06-01/runtime/invocation/req-1/response", body=b'{"ok": true}')
    response = conn.getresponse()
    assert response.status == 202 and json.loads(response.read()) == {"status": "OK"}
    assert inv.done.is_set() and inv.outcome == "response" and inv.body == b'{"ok": true}'
    assert inv.finished_at is not None and inv.finished_at >= inv.handed_out_at

    # A second result for the same request is refused, as RAPID does.
    conn.request("POST", "/2018-06-01/runtime/invocation/req-1/error", body=b"{}")
    response = conn.getresponse()
    assert response.status == 403 and json.loads(response.read())["errorType"] == "InvalidStateTransition"
    conn.close()


def _hand_out(server: RuntimeAPIServer, inv: Invocation) -> None:
    server.submit(inv)
    conn = _connect(server)
    conn.request("GET", NEXT)
    assert conn.getresponse().read() == inv.event
    conn.close()


def test_error_post_keeps_the_error_type(server: RuntimeAPIServer) -> None:
    inv = _invocation("req-err")
    _hand_out(server, inv)
    conn = _connect(server)
    payload = {"errorType": "ValueError", "errorMessage": "boom"}
    conn.request(
        "POST",
        "/2018-06-01/runtime/invocation/req-err/error",
        body=json.dumps(payload),
        headers={"Lambda-Runtime-Function-Error-Type": "ValueError"},
    )
    assert conn.getresponse().status == 202
    assert inv.outcome == "error" and inv.error_type == "ValueError" and json.loads(inv.body) == payload


def test_chunked_result_body_is_read(server: RuntimeAPIServer) -> None:
    inv = _invocation("req-chunked")
    _hand_out(server, inv)
    conn = _connect(server)
    conn.request(
        "POST", "/2018-06-01/runtime/invocation/req-chunked/response", body=iter([b'{"a": ', b"2}"])
    )  # an iterable body goes out with Transfer-Encoding: chunked
    assert conn.getresponse().status == 202
    assert inv.body == b'{"a": 2}'


def test_oversized_response_becomes_a_function_error(server: RuntimeAPIServer) -> None:
    inv = _invocation("req-big")
    _hand_out(server, inv)
    conn = _connect(server)
    conn.request(
        "POST", "/2018-06-01/runtime/invocation/req-big/response", body=b"x" * (MAX_RESPONSE_BYTES + 1)
    )
    response = conn.getresponse()
    assert response.status == 413
    assert inv.outcome == "error" and inv.error_type == "Function.ResponseSizeTooLarge"
    assert "exceeded maximum allowed payload size" in json.loads(inv.body)["errorMessage"]


def test_unknown_request_and_path_are_refused(server: RuntimeAPIServer) -> None:
    conn = _connect(server)
    conn.request("POST", "/2018-06-01/runtime/invocation/nope/response", body=b"{}")
    response = conn.getresponse()
    assert response.status == 400 and json.loads(response.read())["errorType"] == "InvalidRequestID"
    conn.request("GET", "/2018-06-01/runtime/elsewhere")
    response = conn.getresponse()
    assert response.status == 404
    response.read()
    conn.close()


def test_init_error_is_recorded_once(server: RuntimeAPIServer) -> None:
    conn = _connect(server)
    body = {"errorType": "Runtime.ImportModuleError", "errorMessage": "Unable to import module 'handler'"}
    headers = {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"}
    conn.request("POST", "/2018-06-01/runtime/init/error", body=json.dumps(body), headers=headers)
    assert conn.getresponse().read() and server.init_error_event.is_set()
    assert server.init_error is not None and server.init_error.error_type == "Runtime.ImportModuleError"
    conn.request("POST", "/2018-06-01/runtime/init/error", body=b"{}", headers=headers)
    assert conn.getresponse().status == 403
    conn.close()
