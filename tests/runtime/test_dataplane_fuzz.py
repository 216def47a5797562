"""A seeded mutation fuzz of the Lambda handler: malformed events never get a 5xx.

Each event is a valid request (direct or Open Inference Protocol form) with one fault
injected from a fault class, sent as a direct invocation or as an API Gateway REST (v1),
HTTP API (v2) or Function URL event (a third of those base64-encoded). Every malformed
event must get a 4xx with a JSON reason of at most 2 KB, and the valid request sent
after it must be answered exactly as the first time.

Faults that only text can hold (an integer over Python's 4,300 digits, nesting deeper
than the recursion limit) are spliced into the body as raw JSON; a direct invocation
gets the same value as a Python object, as Lambda's runtime would hand it over.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import load_event
from test_lambda_adapter import CONTEXT, HTTP_EVENTS

from edgepack.runtime.lambda_adapter import create_handler

SEED = 20261123
EVENTS = 5_400
MAX_ERROR_BODY = 2048

Handler = Callable[[Any, Any], dict[str, Any]]
DIRECT_INVOKE = "direct-invoke"
TRANSPORTS = (DIRECT_INVOKE, *sorted(HTTP_EVENTS))


@dataclass(frozen=True)
class Raw:
    """A fault spliced verbatim into the body text; ``value`` is it as a Python object."""

    text: str
    value: Any


@dataclass(frozen=True)
class Text:
    """A body that exists only as text or bytes (HTTP events only)."""

    body: str | bytes
    force_b64: bool = False


@dataclass(frozen=True)
class BadBase64:
    """An HTTP body marked base64 that is not."""

    body: str


@dataclass(frozen=True)
class EventFault:
    """A fault in the HTTP event around a valid body."""

    key: str
    value: Any


# -- valid bodies ---------------------------------------------------------------------------


def _valid(form: str) -> dict[str, Any]:
    return load_event("direct.json") if form == "direct" else load_event("oip.json")


def _deep(depth: int) -> Any:
    value: Any = 0.0
    for _ in range(depth):
        value = [value]
    return value


def giant_int(rng: random.Random) -> Raw:
    digits = rng.randint(4_301, 12_000)
    return Raw("9" * digits, 10**digits - 1)


def deep(rng: random.Random) -> Raw:
    depth = rng.choice([rng.randint(65, 900), rng.randint(1_000, 60_000)])
    object_depth = min(depth, 5_000)  # a direct invocation arrives parsed; Lambda's parser caps depth
    return Raw("[" * depth + "0" + "]" * depth, _deep(object_depth))


def _oip_tensor(body: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    tensor: dict[str, Any] = body["inputs"][rng.randrange(len(body["inputs"]))]
    return tensor


def _set_leaf(data: Any, rng: random.Random, value: Any) -> None:
    """Replace one random leaf of nested ``data`` with ``value``."""
    node = data
    while isinstance(node[0], list):
        node = node[rng.randrange(len(node))]
    node[rng.randrange(len(node))] = value


def _direct_data(body: dict[str, Any]) -> Any:
    return body["inputs"]["image"]


# -- fault classes: each (rng, form) -> body (an object tree with Raw, or Text/...) -----------


def f_giant_int(rng: random.Random, form: str) -> Any:
    body = _valid(form)
    if form == "direct":
        where = rng.choice(["data", "outputs", "image"])
        if where == "data":
            _set_leaf(_direct_data(body), rng, giant_int(rng))
        elif where == "outputs":
            body["outputs"] = [giant_int(rng)]
        else:
            body["inputs"]["image"] = giant_int(rng)
        return body
    tensor = _oip_tensor(body, rng)
    where = rng.choice(["data", "shape", "datatype", "name", "id", "size"])
    if where == "data":
        tensor["data"][rng.randrange(len(tensor["data"]))] = giant_int(rng)
    elif where == "shape":
        tensor["shape"][rng.randrange(len(tensor["shape"]))] = giant_int(rng)
    elif where == "size":
        tensor.pop("data")
        tensor["parameters"] = {"binary_data_size": giant_int(rng)}
    elif where == "id":
        body["id"] = giant_int(rng)
    else:
        tensor[where] = giant_int(rng)
    return body


def f_deep_nesting(rng: random.Random, form: str) -> Any:
    body = _valid(form)
    if form == "direct":
        where = rng.choice(["image", "inputs", "outputs", "leaf"])
        if where == "image":
            body["inputs"]["image"] = deep(rng)
        elif where == "inputs":
            body["inputs"] = deep(rng)
        elif where == "outputs":
            body["outputs"] = deep(rng)
        else:
            _set_leaf(_direct_data(body), rng, deep(rng))
        return body
    tensor = _oip_tensor(body, rng)
    where = rng.choice(["data", "shape", "datatype", "name", "leaf", "outputs", "inputs"])
    if where == "leaf":
        tensor["data"][rng.randrange(len(tensor["data"]))] = deep(rng)
    elif where == "outputs":
        body["outputs"] = deep(rng)
    elif where == "inputs":
        body["inputs"].append(deep(rng))
    else:
        tensor[where] = deep(rng)
    return body


def f_huge_shape(rng: random.Random, form: str) -> Any:
    body = _valid(form)
    if form == "direct":  # the direct form has no shape: data with too many axes instead
        body["inputs"]["image"] = _deep(rng.randint(33, 64))
        return body
    tensor = _oip_tensor(body, rng)
    choice = rng.randrange(6)
    if choice == 0:
        tensor["shape"] = [1] * rng.randint(33, 2_000)
    elif choice == 1:
        tensor["shape"] = [2, 10 ** rng.randint(9, 400)]
    elif choice == 2:
        tensor["shape"] = [rng.choice([2**31, 2**32, 2**63 - 1, 2**63, 2**64])] * rng.randint(1, 32)
    elif choice == 3:
        tensor["shape"], tensor["data"] = [0, *[2**40] * rng.randint(2, 30)], []
    elif choice == 4:
        tensor["shape"] = [2**20] * rng.randint(2, 32)
    else:
        # Axes of 2..9: the element count rarely matches, and the last axis is never the model's 1.
        tensor["shape"] = [rng.randint(2, 9) for _ in range(rng.randint(2, 32))]
    return body


WRONG_DATATYPES: list[Any] = [["FP32"], {"FP32": 1}, [], {}, 32, 3.5, None, True, False, "", "fp32", "FP33"]


def f_datatype_type(rng: random.Random, form: str) -> Any:
    body = _valid("oip")
    _oip_tensor(body, rng)["datatype"] = copy.deepcopy(rng.choice(WRONG_DATATYPES))
    return body


def f_bools_in_floats(rng: random.Random, form: str) -> Any:
    body = _valid(form)
    data = _direct_data(body) if form == "direct" else _oip_tensor(body, rng)["data"]
    for _ in range(rng.randint(1, 5)):
        _set_leaf(data, rng, rng.choice([True, False]))
    return body


WRONG_PARAMETERS: list[Any] = [0, 0.0, "", [], False, 1, "x", [1], True, [{"a": 1}]]


def f_falsy_parameters(rng: random.Random, form: str) -> Any:
    body = _valid(form)
    value = copy.deepcopy(rng.choice(WRONG_PARAMETERS))
    where = "request" if form == "direct" else rng.choice(["request", "tensor", "output"])
    if where == "request":
        body["parameters"] = value
    elif where == "tensor":
        _oip_tensor(body, rng)["parameters"] = value
    else:
        body["outputs"] = [{"name": "label", "parameters": value}]
    return body


def f_unknown_outputs(rng: random.Random, form: str) -> Any:
    body = _valid(form)
    name = rng.choice(["logits", "Label", "probabilities ", "x" * rng.randint(1, 200), "\u00e9t\u00e9"])
    if form == "direct":
        body["outputs"] = copy.deepcopy(
            rng.choice(
                [[name], ["label", name], [{"name": "label"}], "label", 0, False, {}, [1], [""], [None]]
            )
        )
    else:
        body["outputs"] = copy.deepcopy(
            rng.choice(
                [
                    [{"name": name}],
                    [{"name": "label"}, {"name": name}],
                    ["label"],
                    [{"name": 1}],
                    [{}],
                    0,
                    {},
                    "x",
                ]
            )
        )
    return body


def f_giant_names(rng: random.Random, form: str) -> Any:
    body = _valid(form)
    giant = rng.choice("xy\u00e9\U0001f600") * rng.randint(100_000, 600_000)
    if form == "direct":
        if rng.random() < 0.5:
            body["inputs"] = {giant: body["inputs"]["image"]}
        else:
            body["outputs"] = [giant]
        return body
    where = rng.choice(["name", "datatype", "output"])
    if where == "output":
        body["outputs"] = [{"name": giant}]
    elif where == "name":
        _oip_tensor(body, rng)["name"] = giant
    else:
        _oip_tensor(body, rng)["datatype"] = giant
    return body


def f_wrong_types(rng: random.Random, form: str) -> Any:
    body = _valid(form)
    value = copy.deepcopy(rng.choice([None, True, 0, 1.5, "abc", [], {}, [None], [[1, 2], [3]], {"a": []}]))
    if rng.random() < 0.15:
        return copy.deepcopy(rng.choice([[1, 2], "inputs", 7, None, True, [], {"inputs": None}, {}]))
    if form == "direct":
        where = rng.choice(["inputs", "image", "leaf"])
        if where == "inputs":
            body["inputs"] = rng.choice([None, True, 0, 1.5, "abc", [], [None], [{"a": 1}, [0.0]]])
        elif where == "image":
            body["inputs"]["image"] = rng.choice(
                [None, True, 0, 1.5, "abc", [], {}, [None], [[1, 2], [3]], {"a": []}]
            )
        else:
            _set_leaf(_direct_data(body), rng, rng.choice([None, "0.5", {}, [], [1, 2]]))
        return body
    tensor = _oip_tensor(body, rng)
    where = rng.choice(["name", "shape", "data", "id", "size", "tensor", "dim", "leaf"])
    if where == "name":
        tensor["name"] = rng.choice([None, 1, "", [], {}, True, "img"])
    elif where == "shape":
        tensor["shape"] = rng.choice([None, "2,8,8,1", {}, 2, [2.0, 8, 8, 1], [-2, 8, 8, 1], [True, 8, 8, 1]])
    elif where == "dim":
        tensor["shape"][rng.randrange(4)] = rng.choice([None, "8", 8.0, -1, True, [8]])
    elif where == "data":
        tensor["data"] = rng.choice([None, "abc", {}, {"a": 1}, [None], [[1, 2], [3]], ["0.5"] * 128])
    elif where == "leaf":
        tensor["data"][rng.randrange(len(tensor["data"]))] = rng.choice([None, "0.5", {}, [], [1, 2]])
    elif where == "id":
        body["id"] = rng.choice([1, [], {}, True, 1.5])
    elif where == "size":
        tensor["parameters"] = {"binary_data_size": value}
    else:
        body["inputs"][0] = rng.choice([None, 1, "image", [], [0.0]])
    return body


def f_binary_on_json(rng: random.Random, form: str) -> Any:
    body = _valid(form)
    if form == "direct":
        body["parameters"] = {"binary_data_output": True}
        return body
    choice = rng.randrange(4)
    if choice == 0:
        tensor = _oip_tensor(body, rng)
        tensor["parameters"] = {"binary_data_size": 4 * len(tensor["data"])}
        if rng.random() < 0.5:
            tensor.pop("data")
    elif choice == 1:
        body["parameters"] = {"binary_data_output": True}
    elif choice == 2:
        body["outputs"] = [{"name": "label", "parameters": {"binary_data": True}}]
    else:
        body["parameters"] = {"binary_data_output": rng.choice(["true", 1, [], {}])}
    return body


def f_garbled_json(rng: random.Random, form: str) -> Text:
    text = json.dumps(_valid(form))
    choice = rng.randrange(6)
    if choice == 0:  # truncated: the top-level object is never closed
        return Text(text[: rng.randrange(len(text) - 1)])
    if choice == 1:  # a raw control character is invalid anywhere in JSON, strings included
        at = rng.randrange(len(text))
        return Text(text[:at] + rng.choice("\x00\x01\x1f") + text[at:])
    if choice == 2:  # trailing garbage
        return Text(text + rng.choice(["}", "]", ",", "x", " {}", "\x00"]))
    if choice == 3:  # NaN / Infinity literals
        literal = rng.choice(["NaN", "Infinity", "-Infinity"])
        return Text(
            text.replace("0.0", literal, 1) if "0.0" in text else text.replace("0.", literal + ".", 1)
        )
    if choice == 4:  # Python-ish, not JSON
        return Text(text.replace('"', "'"))
    return Text(text.replace(":", "=", 1) if rng.random() < 0.5 else "{" + text)


def f_bad_base64(rng: random.Random, form: str) -> BadBase64:
    encoded = base64.b64encode(json.dumps(_valid(form)).encode()).decode()
    choice = rng.randrange(4)
    if choice == 0:
        at = rng.randrange(len(encoded))
        return BadBase64(encoded[:at] + rng.choice("*!-_ \n.@") + encoded[at:])
    if choice == 1:
        return BadBase64(encoded.rstrip("=") + "=" * rng.choice([1, 3]) + "A")
    if choice == 2:  # a length of 4k + 1 characters cannot be base64
        cut = len(encoded) - len(encoded) % 4 + 1 - 4 * rng.randint(1, 10)
        return BadBase64(encoded[:cut])
    return BadBase64(rng.choice(["not*base64!", "====", "a", "\u00e9\u00e9\u00e9\u00e9"]))


BAD_UTF8 = [
    b"\xff",
    b"\xfe",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\xe2\x82",
    b"\x80",
    b"\xf8\x88\x80\x80\x80",
]


def f_bad_utf8(rng: random.Random, form: str) -> Text:
    raw = json.dumps(_valid(form)).encode()
    at = rng.randrange(len(raw))
    return Text(raw[:at] + rng.choice(BAD_UTF8) + raw[at:], force_b64=True)


def f_event_fields(rng: random.Random, form: str) -> EventFault:
    """Wrong types in the HTTP event itself (HTTP events only)."""
    return rng.choice(
        [
            EventFault("body", rng.choice([1, [], ["x"], True, 1.5])),
            EventFault("body", rng.choice(["", None])),
            EventFault("isBase64Encoded", rng.choice(["true", 1, [], {}])),
            EventFault("method", rng.choice([1, None, [], {}, "", "PUT", "DELETE", "X" * 100_000])),
        ]
    )


# name -> (fault, forms it applies to, HTTP events only, weight)
FAULTS: dict[str, tuple[Callable[[random.Random, str], Any], tuple[str, ...], bool, int]] = {
    "giant_int": (f_giant_int, ("direct", "oip"), False, 10),
    "deep_nesting": (f_deep_nesting, ("direct", "oip"), False, 10),
    "huge_shape": (f_huge_shape, ("direct", "oip"), False, 10),
    "datatype_type": (f_datatype_type, ("oip",), False, 8),
    "bools_in_floats": (f_bools_in_floats, ("direct", "oip"), False, 10),
    "falsy_parameters": (f_falsy_parameters, ("direct", "oip"), False, 10),
    "unknown_outputs": (f_unknown_outputs, ("direct", "oip"), False, 10),
    "giant_names": (f_giant_names, ("direct", "oip"), False, 1),
    "wrong_types": (f_wrong_types, ("direct", "oip"), False, 14),
    "binary_on_json": (f_binary_on_json, ("direct", "oip"), False, 6),
    "garbled_json": (f_garbled_json, ("direct", "oip"), True, 10),
    "bad_base64": (f_bad_base64, ("direct", "oip"), True, 5),
    "bad_utf8": (f_bad_utf8, ("direct", "oip"), True, 5),
    "event_fields": (f_event_fields, ("direct", "oip"), True, 4),
}


# -- rendering a body into an event ----------------------------------------------------------


def _splice(body: Any) -> str:
    """``body`` as JSON text, each ``Raw`` replaced by its text."""
    raws: list[Raw] = []

    def default(value: Any) -> str:
        if not isinstance(value, Raw):
            raise TypeError(type(value).__name__)
        raws.append(value)
        return f"@@raw{len(raws) - 1}@@"

    text = json.dumps(body, default=default)
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@raw{i}@@"', raw.text, 1)
    return text


def _objects(body: Any) -> Any:
    """``body`` with each ``Raw`` replaced by its Python value (a direct invocation)."""
    if isinstance(body, Raw):
        return body.value
    if isinstance(body, dict):
        return {k: _objects(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_objects(v) for v in body]
    return body


def _http_event(transport: str, body: Any, b64: bool) -> dict[str, Any]:
    if isinstance(body, EventFault):
        event = HTTP_EVENTS[transport](json.dumps(load_event("oip.json")), b64=b64)
        if body.key == "method":
            if "httpMethod" in event:
                event["httpMethod"] = body.value
            else:
                event["requestContext"]["http"]["method"] = body.value
        else:
            event[body.key] = body.value
        return event
    if isinstance(body, BadBase64):
        event = HTTP_EVENTS[transport]("{}", b64=True)
        event["body"] = body.body
        return event
    if isinstance(body, Text):
        b64 = b64 or body.force_b64 or isinstance(body.body, bytes)
        raw = body.body.encode() if isinstance(body.body, str) else body.body
        event = HTTP_EVENTS[transport]("{}", b64=b64)
        event["body"] = base64.b64encode(raw).decode() if b64 else body.body
        return event
    return HTTP_EVENTS[transport](_splice(body), b64=b64)


def _valid_event(transport: str, form: str, b64: bool) -> dict[str, Any]:
    if transport == DIRECT_INVOKE:
        return _valid(form)
    return HTTP_EVENTS[transport](json.dumps(_valid(form)), b64=b64)


def _error_of(transport: str, response: dict[str, Any]) -> tuple[int, dict[str, Any], int]:
    """(status, error object, size of the body as sent)."""
    if transport == DIRECT_INVOKE:
        return response["statusCode"], response["error"], len(json.dumps(response).encode())
    body = response["body"]
    return response["statusCode"], json.loads(body)["error"], len(body.encode())


# -- the campaign -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def handler(int8_artifact: Path) -> Handler:
    return create_handler(int8_artifact)


def test_malformed_events_get_bounded_4xx_and_serving_goes_on(
    handler: Handler, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(SEED)
    baselines: dict[tuple[str, str, bool], Any] = {}
    for transport, form, b64 in itertools.product(TRANSPORTS, ("direct", "oip"), (False, True)):
        if transport == DIRECT_INVOKE and b64:
            continue
        baselines[transport, form, b64] = answer = handler(_valid_event(transport, form, b64), CONTEXT)
        status = answer.get("statusCode", 200)
        assert status == 200 and "outputs" in (
            answer if transport == DIRECT_INVOKE else json.loads(answer["body"])
        )

    names = list(FAULTS)
    weights = [FAULTS[n][3] for n in names]
    by_class: Counter[str] = Counter()
    by_transport: Counter[str] = Counter()
    by_status: Counter[int] = Counter()
    failures: list[str] = []
    largest = 0
    start = time.perf_counter()
    for i in range(EVENTS):
        name = rng.choices(names, weights)[0]
        fault, forms, http_only, _ = FAULTS[name]
        form = rng.choice(forms)
        transport = rng.choice(TRANSPORTS[1:] if http_only else TRANSPORTS)
        b64 = transport != DIRECT_INVOKE and rng.random() < 1 / 3
        body = fault(rng, form)
        event = _objects(body) if transport == DIRECT_INVOKE else _http_event(transport, body, b64)
        response = handler(event, CONTEXT)
        where = f"event {i} ({name}, {form}, {transport}{', base64' if b64 else ''})"
        try:
            status, error, size = _error_of(transport, response)
        except (KeyError, TypeError, ValueError):
            failures.append(f"{where}: not an error answer: {str(response)[:300]}")
            continue
        by_class[name] += 1
        by_transport[transport + ("+b64" if b64 else "")] += 1
        by_status[status] += 1
        largest = max(largest, size)
        if not (400 <= status < 500) or size > MAX_ERROR_BODY or not isinstance(error.get("message"), str):
            failures.append(f"{where}: {status}, {size} bytes: {str(error)[:300]}")
        # The same valid request as the first time, through the same transport, answers the same.
        valid_b64 = b64 and (transport, form, True) in baselines
        if (
            handler(_valid_event(transport, form, valid_b64), CONTEXT)
            != baselines[transport, form, valid_b64]
        ):
            failures.append(f"{where}: the valid request afterwards was answered differently")
        if i % 500 == 0:
            capsys.readouterr()  # drop the captured logs as we go
    elapsed = time.perf_counter() - start
    capsys.readouterr()

    with capsys.disabled():
        print(f"\nfuzz: {sum(by_class.values())} malformed events in {elapsed:.1f} s, seed {SEED}")
        for name in names:
            print(f"  {name:18} {by_class[name]:5}")
        print(f"  by transport: {dict(sorted(by_transport.items()))}")
        print(f"  by status: {dict(sorted(by_status.items()))}; largest error body {largest} bytes")
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} failures)"
    assert sum(by_class.values()) >= 5_000
    assert (
        all(by_class[name] >= 40 for name in names if name != "giant_names") and by_class["giant_names"] >= 10
    )
    assert by_transport.keys() >= {*TRANSPORTS, *(f"{t}+b64" for t in TRANSPORTS[1:])}
