"""A seeded mutation fuzz of the HTTP server: >= 10,000 malformed requests over raw sockets.

Every answer must be a 4xx (or a 2xx, when a mutation happens to stay valid), never a 5xx
or a dropped server, and a valid request must get the very same answer afterwards.

Requests whose framing stays intact (a correct Content-Length) share one keep-alive
connection; mutations that can break framing (request line, headers, lengths) get their
own connection, whose write side is closed after the bytes so the server sees the end.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from http_helpers import RawClient, RawResponse, ServerProcess, http_request, run_server
from runtime_helpers import Models

SEED = 20261123
CASES = 10_000
TIME_LIMIT_S = 60.0

INFER = "/v2/models/digits/infer"
PATHS = [
    "/v2", "/v2/", "/v2/health/live", "/v2/health/ready", "/metrics", "/v2/models/digits",
    "/v2/models/digits/ready", "/v2/models/digits/versions/1.0.0", INFER,
    "/v2/models/digits/versions/1.0.0/infer", "/v2/models/nope/infer", "/v2/models//infer",
    "/v2/models/digits/versions//infer", "/v2/models/%00/infer", "/v2/models/digits/infer?x=1",
    "/../../etc/passwd", "/v2/models/digits/versions/1.0.0/ready/extra", "/" + "a" * 3000,
]  # fmt: skip
METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "get", "P0ST", "CONNECT"]
JUNK = [b"", b"\x00", b"\xff\xfe", b"\r", b"\n", b" ", b"\t", b":", b"{", b"}", b'"', b"%", b"\x7f", b"\r\n"]


@pytest.fixture(scope="module")
def server(fp32_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with run_server(str(fp32_artifact), "--max-body-bytes", "200000", log_path=tmp / "log") as proc:
        yield proc


def _payload(images: np.ndarray) -> dict[str, Any]:
    return {
        "id": "fuzz",
        "inputs": [
            {
                "name": "image",
                "shape": list(images.shape),
                "datatype": "FP32",
                "data": images.ravel().tolist(),
            }
        ],
        "outputs": [{"name": "probabilities"}],
    }


def _binary(
    images: np.ndarray, *, size_delta: int = 0, header_delta: int = 0
) -> tuple[bytes, dict[str, str]]:
    data = images.astype(np.float32).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": list(images.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(data) + size_delta},
                }
            ],
            "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return header + data, {"Inference-Header-Content-Length": str(len(header) + header_delta)}


# -- body mutations (framing intact) ------------------------------------------------------------


def _mutate_tensor(rng: random.Random, payload: dict[str, Any]) -> Any:
    tensor = payload["inputs"][0]
    choice = rng.randrange(16)
    if choice == 0:
        tensor["name"] = rng.choice(["", "img", "image ", 5, None, "probabilities", "x" * 500])
    elif choice == 1:
        tensor["shape"] = rng.choice(
            [[], [1], [-1, 8, 8, 1], [2, 8, 8], [1, 8, 8, 1, 1], [0, 8, 8, 1], "1,8,8,1", [1.5, 8, 8, 1],
             [True, 8, 8, 1], [10**30, 8, 8, 1], [2**31, 2**31, 1, 1], None]
        )  # fmt: skip
    elif choice == 2:
        tensor["datatype"] = rng.choice(["FP16", "FP64", "INT8", "BYTES", "BOOL", "fp32", "", None, 3, "FP3"])
    elif choice == 3:
        tensor["data"] = rng.choice(
            [[], None, "abc", [["a"]] * 64, [None] * 64, [[1, 2], [3]], {"a": 1}, [True] * 64, [1e39] * 64,
             [float("1e308")] * 64, [-(2**70)] * 64, ["1"] * 64, [[[[0.0]]]] * 64, 1.0]
        )  # fmt: skip
    elif choice == 4:
        data = tensor["data"]
        del data[rng.randrange(len(data)) :]
    elif choice == 5:
        tensor.pop(rng.choice(["name", "shape", "datatype", "data"]))
    elif choice == 6:
        payload["inputs"] = rng.choice([[], {}, None, "x", [tensor, tensor], [tensor, 5], [[1, 2]]])
    elif choice == 7:
        payload.pop("inputs")
    elif choice == 8:
        payload["outputs"] = rng.choice([[{"name": "nope"}], "x", [{"name": 3}], [None], {}, [{"name": ""}]])
    elif choice == 9:
        payload["id"] = rng.choice([5, None, [], {"a": 1}, "x" * 10_000])
    elif choice == 10:
        payload["parameters"] = rng.choice(
            [5, "x", [], {"binary_data_output": "yes"}, {"binary_data_output": True}]
        )
    elif choice == 11:
        tensor["parameters"] = rng.choice(
            [5, {"binary_data_size": -1}, {"binary_data_size": 10**12}, {"binary_data_size": "8"},
             {"binary_data_size": 256}, {"content_type": "str"}]
        )  # fmt: skip
    elif choice == 12:
        return rng.choice([[], 5, "inputs", None, True, [payload]])
    elif choice == 13:
        payload["inputs"] = {"image": tensor["data"]}  # the direct form, with wrong nesting
    elif choice == 14:
        tensor["data"] = [rng.uniform(-1e6, 1e6) for _ in range(64 * max(1, tensor["shape"][0]))][
            : rng.randrange(200)
        ]
    else:
        tensor["data"] = [rng.choice([0, 1, -1, 0.5, 255, 1e-45]) for _ in tensor["data"]]
    return payload


def _mutate_bytes(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(4)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[at:at] = rng.choice([*JUNK, b"NaN", b"Infinity", b"1e999", b"[" * 50, b"9" * 5000])
        elif op == 2:
            del data[at : at + rng.randint(1, 40)]
        else:
            del data[at:]
    return bytes(data)


def _framed_case(rng: random.Random, images: np.ndarray) -> bytes:
    """One complete request with a correct Content-Length."""
    kind = rng.randrange(7)
    if kind == 0:  # structured tensor mutation
        body = json.dumps(_mutate_tensor(rng, _payload(images))).encode()
        return http_request("POST", INFER, body)
    if kind == 1:  # byte mutations of a valid JSON body
        return http_request("POST", INFER, _mutate_bytes(rng, json.dumps(_payload(images)).encode()))
    if kind == 2:  # binary sizes and header lengths
        body, headers = _binary(
            images,
            size_delta=rng.choice([0, -4, 4, -1, 1, -len(images.tobytes())]),
            header_delta=rng.choice([0, -1, 1, -10, 10**6, -(10**6)]),
        )
        if rng.random() < 0.3:
            headers["Inference-Header-Content-Length"] = rng.choice(
                ["", "-1", "abc", "1e3", " 5", "0x10", "9" * 30]
            )
        if rng.random() < 0.3:
            body = _mutate_bytes(rng, body)
        return http_request("POST", INFER, body, headers)
    if kind == 3:  # wrong methods and paths
        method = rng.choice(METHODS)
        body = json.dumps(_payload(images[:1])).encode() if rng.random() < 0.5 else b""
        return http_request(
            method,
            rng.choice(PATHS),
            body,
            {"Content-Length": str(len(body))} if method != "POST" and body else None,
        )
    if kind == 4:  # odd but well-formed headers
        headers = rng.choice(
            [{"Content-Encoding": "gzip"}, {"Content-Encoding": "br"}, {"Authorization": "Bearer x"},
             {"Expect": "100-continue"}, {"Connection": "keep-alive, Upgrade", "Upgrade": "h2c"},
             {"Content-Type": "text/plain"}, {"Accept-Encoding": "gzip, br"}, {"X-" + "a" * 200: "b" * 2000}]
        )  # fmt: skip
        return http_request("POST", INFER, json.dumps(_payload(images[:1])).encode(), headers)
    if kind == 5:  # random JSON documents
        doc = rng.choice(
            [
                {},
                [],
                "",
                0,
                {"inputs": None},
                {"inputs": [{}]},
                {"inputs": {"image": "x"}},
                {"inputs": [[[]]]},
            ]
        )
        return http_request("POST", INFER, json.dumps(doc).encode())
    return http_request("POST", INFER, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))


def _unframed_case(rng: random.Random, images: np.ndarray) -> bytes:
    """A request whose framing may be broken: sent on its own connection, then EOF."""
    good = http_request("POST", INFER, json.dumps(_payload(images[:1])).encode())
    head, _, body = good.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    kind = rng.randrange(6)
    if kind == 0:  # garbled request line
        lines[0] = rng.choice(
            [b"", b"POST", b"POST  " + INFER.encode() + b" HTTP/1.1", b"POST " + INFER.encode(),
             b"POST " + INFER.encode() + b" HTTP/1.1 extra", b"POST " + INFER.encode() + b" HTTP/3",
             b"POST " + INFER.encode() + b" http/1.1", b"POST http://x" + INFER.encode() + b" HTTP/1.1",
             b"\x00\x01\x02", b"PO ST / HTTP/1.1", b"POST /v2\x00 HTTP/1.1", _mutate_bytes(rng, lines[0])]
        )  # fmt: skip
    elif kind == 1:  # bad header lines
        bad = rng.choice(
            [b"NoColon", b"Bad Name: x", b" folded: x", b": empty", b"X: \x00", b"X: a\rb", b"\tX: y",
             b"Content-Length: 5", b"Content-Length: -1", b"Content-Length: 1_0", b"Content-Length:",
             b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity",
             b"Content-Length: 99999999999999999999",
             b"X: " + b"y" * 40000, b"Inference-Header-Content-Length: 3"]
        )  # fmt: skip
        lines.insert(rng.randrange(1, len(lines) + 1), bad)
    elif kind == 2:  # wrong lengths
        lines = [ln for ln in lines if not ln.lower().startswith(b"content-length")]
        lines.append(
            b"Content-Length: " + str(max(0, len(body) + rng.choice([-50, -1, 1, 50, 10**5, 10**6]))).encode()
        )
    elif kind == 3:  # too many headers
        lines.extend(b"X-%d: y" % i for i in range(rng.choice([99, 150, 2000])))
    elif kind == 4:  # byte mutations anywhere
        return _mutate_bytes(rng, good)
    else:  # a truncated request
        return good[: rng.randrange(len(good))]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _read_all(client: RawClient) -> list[RawResponse]:
    answers = []
    while client.sock is not None:
        try:
            answers.append(client.read_response())
        except ConnectionError:
            break
    client.close()
    return answers


def test_fuzz_never_answers_5xx_and_the_server_keeps_serving(
    server: ServerProcess, tflite_models: Models
) -> None:
    rng = random.Random(SEED)
    images = tflite_models.images[:2]
    valid = http_request("POST", INFER, json.dumps(_payload(images)).encode())
    binary_body, binary_headers = _binary(images)
    valid_binary = http_request("POST", INFER, binary_body, binary_headers)

    keep = RawClient(server.port)
    before = [keep.request(valid), keep.request(valid_binary)]
    assert [a.status for a in before] == [200, 200]

    statuses: dict[int, int] = {}
    failures: list[str] = []
    started = time.monotonic()
    sent = 0
    cases: list[Callable[[random.Random, np.ndarray], bytes]] = [_framed_case] * 4 + [_unframed_case]
    while sent < CASES:
        assert time.monotonic() - started < TIME_LIMIT_S, f"fuzz too slow: {sent} requests"
        make = rng.choice(cases)
        data = make(rng, images)
        if make is _framed_case:
            answers = [keep.request(data)]
        else:
            client = RawClient(server.port)
            # The server may answer and close before it has read everything.
            with contextlib.suppress(OSError):
                client.send(data, end_input=True)
            answers = _read_all(client)
        sent += 1
        for answer in answers:
            statuses[answer.status] = statuses.get(answer.status, 0) + 1
            if answer.status >= 500:
                failures.append(f"{answer.status} {answer.body[:200]!r} for {data[:300]!r}")
            elif answer.status >= 400:
                error = answer.json()["error"]
                assert isinstance(error, str) and "\n" not in error and len(error) <= 300
    elapsed = time.monotonic() - started
    assert failures == []
    assert sum(statuses.values()) >= CASES * 0.9, statuses
    assert any(400 <= s < 500 for s in statuses)

    after = [keep.request(valid), keep.request(valid_binary)]
    assert [(a.status, a.headers.get("content-type"), a.body) for a in after] == [
        (b.status, b.headers.get("content-type"), b.body) for b in before
    ]
    assert not [r for r in server.logs() if r.get("level") == "error"]
    print(f"fuzz: {sent} requests in {elapsed:.1f}s, statuses {dict(sorted(statuses.items()))}")
