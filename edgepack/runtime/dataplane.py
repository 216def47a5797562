"""One data plane for every transport: decode -> preprocess -> predict -> postprocess -> encode.

The Lambda handler, the HTTP server and the device agent only adapt their transport to
a request body (``parse_json`` parses it, the same way for all of them) plus, where the
transport carries one, a binary tail; everything between is here, written once, each
stage timed. Two request forms are understood:

Direct form (one JSON object, nested lists)::

    {"inputs": {"image": [[...]]}, "outputs"?: ["probabilities", ...], "parameters"?: {...}}
    or, for a one-input model, {"inputs": [[...]]}
    -> {"model_name": ..., "model_version": ..., "outputs": {"probabilities": [[...]], ...}}

Open Inference Protocol (KServe v2) JSON form::

    {"id"?: str, "parameters"?: {"binary_data_output"?: bool, ...},
     "inputs": [{"name", "shape", "datatype", "data" | "parameters": {"binary_data_size": N}}],
     "outputs"?: [{"name", "parameters"?: {"binary_data"?: bool}}]}
    -> {"model_name", "model_version", "id"?,
        "outputs": [{"name", "shape", "datatype", "data" | "parameters": {"binary_data_size": N}}]}

OIP ``data`` is row-major, flat or nested, and is reshaped by ``shape``; ``datatype`` must
be the model input's (``FP32`` for the public float32 input of an int8 model). In both
forms ``outputs`` selects and orders the response tensors (``[]`` means all; a name the
model does not produce is refused); ``parameters`` must be an object and, binary flags
aside, are ignored. Booleans are data only for a ``BOOL`` input: ``true`` among numbers
is refused, not read as 1.

Binary tensor extension (KServe v2 / Triton): a transport that carries raw bytes after
the JSON header (HTTP: ``Inference-Header-Content-Length``) passes them to
``DataPlane.run(payload, binary=tail)``. An input with ``"parameters":
{"binary_data_size": N}`` and no ``data`` takes the next N bytes of the tail, in the
order of such inputs; the sizes must add up to the tail's length. Request-level
``"binary_data_output": true`` asks every output in binary, an output's own
``"binary_data"`` overrides it; a binary output carries ``binary_data_size`` instead of
``data`` and its bytes follow in ``InferenceResult.binary``, in the order of the
outputs. Bytes are little-endian and row-major in the tensor's datatype (``BOOL``: one
byte, 0 or 1); ``BYTES`` elements are each a 4-byte little-endian length then the bytes.
``binary=None`` is a transport without a binary tail (Lambda's JSON events): binary
inputs and outputs are refused with a reason. Binary outputs may carry NaN; JSON ones
may not (a model answering NaN in JSON is a 500).

Limits (each a 400 naming what is wrong): a shape has at most ``MAX_DIMS`` axes and
describes at most ``MAX_ELEMENTS`` elements (counting a 0 axis as 1); JSON bodies nested
deeper than Python's recursion limit, integer literals over Python's 4,300 digits, NaN
and Infinity literals and bad UTF-8 are refused by ``parse_json``. Every error message
is bounded (``errors.bounded_message``), user-supplied text in it clipped
(``errors.quote``).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import BadRequestError, InferenceError, quote
from .hooks import Hooks
from .predictor import Predictor, batch_size, coerce, to_array
from .signature import NUMPY_DTYPES, OIP_DATATYPES, IOSignature
from .telemetry import ERROR, REQUEST, Telemetry

DIRECT = "direct"
OIP = "oip"
STAGES = ("decode", "preprocess", "predict", "postprocess", "encode")

MAX_DIMS = 32  # numpy allows 64; no model input has more than a handful
MAX_ELEMENTS = 1 << 28  # per tensor, 0 axes counted as 1: 1 GiB of FP32, beyond any real request

BYTES = "BYTES"
_LENGTH_PREFIX = 4  # BYTES elements in binary: uint32 little-endian length, then the bytes

_FORMS_HINT = (
    'send {"inputs": {"<name>": <nested lists>}} or an Open Inference Protocol request '
    '{"inputs": [{"name", "shape", "datatype", "data"}]}'
)
_NO_BINARY_TRANSPORT = (
    "binary tensor data is not accepted by this endpoint (it carries JSON only); send the values in 'data'"
)


@dataclass(frozen=True)
class InferenceRequest:
    """A decoded request: which form it came in, and its input arrays by name."""

    protocol: str  # DIRECT | OIP
    inputs: dict[str, Any]
    id: str | None = None  # OIP request id, echoed in the response
    outputs: tuple[str, ...] | None = None  # requested outputs, in order; None = all
    parameters: Mapping[str, Any] = field(default_factory=dict)  # request parameters
    binary_output: bool = False  # OIP binary_data_output: every output in binary unless overridden
    binary_outputs: Mapping[str, bool] = field(default_factory=dict)  # OIP per-output binary_data

    def wants_binary(self, output: str) -> bool:
        """Whether ``output`` is answered as binary data rather than JSON ``data``."""
        return self.binary_outputs.get(output, self.binary_output)


@dataclass(frozen=True)
class InferenceResult:
    """The response: its JSON-able header, binary output buffers, and stage timings."""

    response: dict[str, Any]  # the JSON body (with binary outputs, the header before ``binary``)
    protocol: str
    batch_size: int
    timings_ms: Mapping[str, float]  # one entry per STAGES, plus "total"
    binary: bytes = b""  # binary outputs' bytes, in the order of response["outputs"]; b"" when none


# -- parse --------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise BadRequestError(f"body is not valid JSON: {name} is not a number (JSON has no NaN or infinity)")


def parse_json(body: bytes | bytearray | memoryview | str) -> Any:
    """A request body (UTF-8 bytes or text) parsed as JSON; ``BadRequestError`` says why not.

    Refuses bad UTF-8, malformed JSON, nesting deeper than the recursion limit, integer
    literals over Python's digit limit and the ``NaN``/``Infinity`` literals, each with a
    one-line reason. Every transport parses with this, so they all refuse alike.
    """
    if isinstance(body, str):
        text = body
    else:
        try:
            text = str(body, "utf-8")
        except UnicodeDecodeError as e:
            raise BadRequestError(
                f"body is not UTF-8 text (bad byte at offset {e.start}); expected a JSON inference request"
            ) from e
    if not text or text.isspace():
        raise BadRequestError("empty request body; expected a JSON inference request")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as e:
        raise BadRequestError(f"body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
    except RecursionError as e:
        raise BadRequestError("body is not acceptable JSON: nested too deeply") from e
    except ValueError as e:  # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        raise BadRequestError(
            f"body is not acceptable JSON: an integer literal is longer than {sys.get_int_max_str_digits()} "
            "digits"
        ) from e


# -- decode -------------------------------------------------------------------------------


def decode(
    payload: Any, signature: IOSignature, *, binary: bytes | memoryview | None = None
) -> InferenceRequest:
    """A decoded request body as an ``InferenceRequest``; ``BadRequestError`` says what is wrong.

    ``binary`` is the transport's binary tail (``None``: the transport has none).
    """
    if not isinstance(payload, Mapping):
        raise BadRequestError(f"request must be a JSON object, got {_json_type(payload)}; {_FORMS_HINT}")
    if "inputs" not in payload:
        raise BadRequestError(f"request has no 'inputs'; {_FORMS_HINT}")
    parameters = _parameters(payload.get("parameters"), "'parameters'")
    inputs = payload["inputs"]
    if isinstance(inputs, Mapping):
        arrays = {str(k): to_array(str(k), v) for k, v in inputs.items()}
        return _decode_direct(payload, parameters, binary, arrays)
    if not isinstance(inputs, list) or not inputs:
        raise BadRequestError(f"'inputs' must be a non-empty object or list; {_FORMS_HINT}")
    tensors = [isinstance(t, Mapping) for t in inputs]
    if all(tensors):
        return _decode_oip(payload, parameters, inputs, signature, binary)
    if any(tensors):
        raise BadRequestError("'inputs' mixes tensor objects and plain data")
    if len(signature.inputs) != 1:
        names = ", ".join(quote(n) for n in signature.input_names)
        raise BadRequestError(
            f"'inputs' is a list, which only a one-input model accepts; this model has inputs {names}: "
            'send {"inputs": {"<name>": ...}}'
        )
    name = signature.inputs[0].name
    return _decode_direct(payload, parameters, binary, {name: to_array(name, inputs)})


def _decode_direct(
    payload: Mapping[str, Any],
    parameters: Mapping[str, Any],
    binary: bytes | memoryview | None,
    arrays: dict[str, Any],
) -> InferenceRequest:
    if binary is not None and len(binary):
        raise BadRequestError(
            "binary data comes only with Open Inference Protocol inputs that carry 'binary_data_size'"
        )
    if _binary_flag(parameters, "binary_data_output", "'parameters'"):
        raise BadRequestError("binary outputs need the Open Inference Protocol form of the request")
    requested = payload.get("outputs")
    outputs: tuple[str, ...] | None = None
    if requested is not None:
        if not isinstance(requested, list) or not all(isinstance(o, str) and o for o in requested):
            raise BadRequestError(
                f"'outputs' must be a list of output names, got {_json_type(requested)} {quote(requested)}"
            )
        outputs = tuple(dict.fromkeys(requested)) or None  # [] = all, as the OIP form
    return InferenceRequest(protocol=DIRECT, inputs=arrays, outputs=outputs, parameters=parameters)


def _decode_oip(
    payload: Mapping[str, Any],
    parameters: Mapping[str, Any],
    tensors: list[Any],
    signature: IOSignature,
    binary: bytes | memoryview | None,
) -> InferenceRequest:
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequestError(f"'id' must be a string, got {_json_type(request_id)}")
    binary_output = _binary_flag(parameters, "binary_data_output", "'parameters'")

    tail = _BinaryTail(binary) if binary is not None else None
    arrays: dict[str, Any] = {}
    for position, tensor in enumerate(tensors):
        name, arr = _decode_oip_tensor(position, tensor, signature, tail)
        if name in arrays:
            raise BadRequestError(f"input {quote(name)} appears twice in 'inputs'")
        arrays[name] = arr
    if tail is not None:
        tail.finish()

    requested = payload.get("outputs")
    outputs: tuple[str, ...] | None = None
    binary_outputs: dict[str, bool] = {}
    if requested is not None:
        if not isinstance(requested, list) or not all(
            isinstance(o, Mapping) and isinstance(o.get("name"), str) for o in requested
        ):
            raise BadRequestError('\'outputs\' must be a list of {"name": "<output name>"} objects')
        for o in requested:
            where = f"output {quote(o['name'])}: 'parameters'"
            flag = _binary_flag(_parameters(o.get("parameters"), where), "binary_data", where)
            if flag is not None:
                binary_outputs[o["name"]] = flag
        outputs = tuple(dict.fromkeys(o["name"] for o in requested)) or None  # [] = all, as KServe
    if binary is None and (binary_output or any(binary_outputs.values())):
        raise BadRequestError(
            "binary outputs are not available on this endpoint (it carries JSON only); "
            "drop 'binary_data_output' and 'binary_data'"
        )
    return InferenceRequest(
        protocol=OIP,
        inputs=arrays,
        id=request_id,
        outputs=outputs,
        parameters=parameters,
        binary_output=bool(binary_output),
        binary_outputs=binary_outputs,
    )


def _decode_oip_tensor(
    position: int, tensor: Mapping[str, Any], signature: IOSignature, tail: _BinaryTail | None
) -> tuple[str, Any]:
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequestError(f"inputs[{position}]: 'name' must be a non-empty string")
    where = f"input {quote(name)}"
    shape, count = _checked_shape(where, tensor.get("shape"))
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in NUMPY_DTYPES:
        raise BadRequestError(
            f"{where}: unknown datatype {quote(datatype)}; known: {', '.join(sorted(NUMPY_DTYPES))}"
        )
    if name in signature.input_names:
        expected = signature.input(name).oip_datatype
        if datatype != expected:
            raise BadRequestError(f"{where}: datatype {datatype} does not match the model's {expected}")
    parameters = _parameters(tensor.get("parameters"), f"{where}: 'parameters'")
    if "binary_data_size" in parameters:
        if tail is None:
            raise BadRequestError(f"{where}: {_NO_BINARY_TRANSPORT}")
        if "data" in tensor:
            raise BadRequestError(f"{where}: has both 'data' and 'binary_data_size'; send one")
        arr = _binary_tensor(where, parameters["binary_data_size"], shape, count, datatype, tail)
    else:
        arr = _json_tensor(name, tensor, shape, count)
    if datatype != BYTES:
        arr = coerce(name, arr, NUMPY_DTYPES[datatype])
    return name, arr


def _checked_shape(where: str, shape: Any) -> tuple[list[int], int]:
    """``shape`` and the number of elements it describes, within ``MAX_DIMS`` and ``MAX_ELEMENTS``."""
    if not isinstance(shape, list):
        raise BadRequestError(
            f"{where}: 'shape' must be a list of non-negative integers, got {_json_type(shape)}"
        )
    if len(shape) > MAX_DIMS:
        raise BadRequestError(
            f"{where}: 'shape' has {len(shape)} dimensions; at most {MAX_DIMS} are accepted"
        )
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadRequestError(f"{where}: 'shape' must be a list of non-negative integers, got {quote(shape)}")
    if any(d > MAX_ELEMENTS for d in shape) or math.prod(max(d, 1) for d in shape) > MAX_ELEMENTS:
        raise BadRequestError(
            f"{where}: 'shape' {quote(shape)} describes more than {MAX_ELEMENTS} elements, the most accepted"
        )
    return shape, math.prod(shape)


def _json_tensor(name: str, tensor: Mapping[str, Any], shape: list[int], count: int) -> np.ndarray:
    """The tensor's JSON ``data``, reshaped by ``shape``."""
    where = f"input {quote(name)}"
    if "data" not in tensor:
        raise BadRequestError(f"{where}: no 'data'")
    data = tensor["data"]
    if not isinstance(data, list):
        data = [data]  # a single element
    arr = np.zeros((0,), dtype=np.float32) if not data else to_array(name, data)
    if arr.size != count:
        raise BadRequestError(f"{where}: 'data' has {arr.size} elements but shape {shape} needs {count}")
    return arr.reshape(shape)


class _BinaryTail:
    """The binary tail of a request, handed out in order to the inputs that size a part."""

    def __init__(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        self.data = view if view.format == "B" and view.ndim == 1 else view.cast("B")
        self.offset = 0

    def take(self, where: str, size: int) -> memoryview:
        end = self.offset + size
        if end > len(self.data):
            raise BadRequestError(
                f"{where}: binary_data_size {quote(size)} runs past the end of the binary data "
                f"({len(self.data)} bytes, {self.offset} taken by earlier inputs)"
            )
        part = self.data[self.offset : end]
        self.offset = end
        return part

    def finish(self) -> None:
        if self.offset != len(self.data):
            raise BadRequestError(
                f"the request carries {len(self.data)} bytes of binary data but the inputs' "
                f"binary_data_size add up to {self.offset}"
            )


def _binary_tensor(
    where: str, size: Any, shape: list[int], count: int, datatype: str, tail: _BinaryTail
) -> np.ndarray:
    """The next ``size`` bytes of ``tail`` as a ``datatype`` tensor of ``shape``."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadRequestError(f"{where}: binary_data_size must be a non-negative integer, got {quote(size)}")
    if datatype == BYTES:
        return _bytes_elements(where, tail.take(where, size), count).reshape(shape)
    dtype = np.dtype(NUMPY_DTYPES[datatype]).newbyteorder("<")
    needed = count * dtype.itemsize
    if size != needed:
        raise BadRequestError(
            f"{where}: binary_data_size is {quote(size)} bytes but shape {shape} of {datatype} needs {needed}"
        )
    raw = tail.take(where, size)
    if dtype.kind == "b":  # any nonzero byte would read as True: only 0 and 1 are booleans
        octets = np.frombuffer(raw, dtype=np.uint8)
        if count and int(octets.max()) > 1:
            raise BadRequestError(f"{where}: BOOL binary data must be bytes 0 or 1")
        return octets.view(np.bool_).reshape(shape)
    arr = np.frombuffer(raw, dtype=dtype).reshape(shape)
    return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))


def _bytes_elements(where: str, raw: memoryview, count: int) -> np.ndarray:
    """``count`` length-prefixed BYTES elements filling ``raw`` exactly, as an object array."""
    elements: list[bytes] = []
    offset, end = 0, len(raw)
    while offset < end:
        if offset + _LENGTH_PREFIX > end or len(elements) == count:
            break
        length = int.from_bytes(raw[offset : offset + _LENGTH_PREFIX], "little")
        offset += _LENGTH_PREFIX
        if offset + length > end:
            break
        elements.append(bytes(raw[offset : offset + length]))
        offset += length
    if offset != end or len(elements) != count:
        raise BadRequestError(
            f"{where}: binary BYTES data is not {count} length-prefixed elements filling its "
            f"binary_data_size ({end} bytes)"
        )
    arr = np.empty(count, dtype=object)
    arr[:] = elements
    return arr


def _parameters(value: Any, where: str) -> Mapping[str, Any]:
    """A ``parameters`` value: an object, or absent (``None``)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequestError(f"{where} must be an object, got {_json_type(value)}")
    return value


def _binary_flag(parameters: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = parameters.get(key)
    if value is not None and not isinstance(value, bool):
        raise BadRequestError(f"{where}: {key!r} must be true or false, got {_json_type(value)}")
    return value


# -- encode -------------------------------------------------------------------------------


def encode(
    request: InferenceRequest, outputs: Mapping[str, Any], *, model_name: str, model_version: str
) -> dict[str, Any]:
    """The JSON response body for ``request`` in its own form, from public output arrays.

    For a request that asks binary outputs, use ``encode_parts``: this refuses it.
    """
    body, binary = encode_parts(request, outputs, model_name=model_name, model_version=model_version)
    if binary:
        raise InferenceError("encode() cannot return binary outputs; use encode_parts()")
    return body


def encode_parts(
    request: InferenceRequest, outputs: Mapping[str, Any], *, model_name: str, model_version: str
) -> tuple[dict[str, Any], bytes]:
    """The response header and the binary outputs' bytes (``b""`` when none)."""
    arrays = {name: np.asarray(value) for name, value in outputs.items()}
    if request.outputs is not None:
        unknown = [n for n in request.outputs if n not in arrays]
        if unknown:
            available = ", ".join(quote(n) for n in arrays)
            raise BadRequestError(f"unknown output {quote(unknown[0])} requested; available: {available}")
        arrays = {n: arrays[n] for n in request.outputs}
    if request.protocol != OIP:
        body = {
            "model_name": model_name,
            "model_version": model_version,
            "outputs": {name: _json_values(name, arr) for name, arr in arrays.items()},
        }
        return body, b""
    header: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        header["id"] = request.id
    tensors: list[dict[str, Any]] = []
    parts: list[bytes] = []
    for name, arr in arrays.items():
        datatype = _oip_datatype(name, arr)
        tensor: dict[str, Any] = {"name": name, "shape": list(arr.shape), "datatype": datatype}
        if request.wants_binary(name):
            raw = _binary_values(arr, datatype)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            parts.append(raw)
        else:
            tensor["data"] = _json_values(name, arr.reshape(-1))
        tensors.append(tensor)
    header["outputs"] = tensors
    return header, b"".join(parts)


def _oip_datatype(name: str, arr: np.ndarray) -> str:
    if arr.dtype.kind in "US":
        return BYTES
    datatype = OIP_DATATYPES.get(arr.dtype.name)
    if datatype is None or datatype == BYTES:
        raise InferenceError(
            f"output {quote(name)}: dtype {arr.dtype.name} has no Open Inference Protocol datatype"
        )
    return datatype


def _binary_values(arr: np.ndarray, datatype: str) -> bytes:
    """``arr`` as the binary extension carries it: little-endian, row-major."""
    if datatype == BYTES:
        flat = arr.reshape(-1).tolist()
        items = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in flat]
        return b"".join(len(v).to_bytes(_LENGTH_PREFIX, "little") + v for v in items)
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def _json_values(name: str, arr: np.ndarray) -> Any:
    if arr.dtype.kind in "fc" and not bool(np.all(np.isfinite(arr))):
        # JSON has no NaN or infinity; a model producing them is broken, not the request.
        raise InferenceError(f"output {quote(name)} contains NaN or infinity")
    if arr.dtype.kind == "S":
        arr = np.char.decode(arr, "utf-8", errors="replace")
    return arr.tolist()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


# -- the data plane -----------------------------------------------------------------------


class DataPlane:
    """Decode, validate, predict and encode requests for one model; transport-agnostic."""

    def __init__(
        self,
        predictor: Predictor,
        *,
        model_name: str,
        model_version: str,
        hooks: Hooks | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.predictor = predictor
        self.model_name = model_name
        self.model_version = model_version
        self.hooks = hooks if hooks is not None else Hooks()
        self.telemetry = telemetry if telemetry is not None else predictor.telemetry

    def infer(self, payload: Any) -> dict[str, Any]:
        """The response body for a parsed JSON request body; ``BadRequestError`` on bad input."""
        return self.run(payload).response

    def run(self, payload: Any, *, binary: bytes | memoryview | None = None) -> InferenceResult:
        """Like ``infer``, with binary data, the protocol, batch size and per-stage timings.

        ``binary`` is the bytes the transport carried after the JSON header: ``None`` when
        it carries none (binary inputs and outputs are then refused), ``b""`` when it could
        but the request has none. Binary outputs come back in ``InferenceResult.binary``.
        """
        timings: dict[str, float] = {}
        start = mark = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            timings[stage] = (now - mark) * 1e3
            mark = now

        stage = "decode"
        try:
            request = decode(payload, self.predictor.signature, binary=binary)
            lap(stage)
            stage = "preprocess"
            inputs = self._hook("preprocess", self.hooks.preprocess, request.inputs)
            lap(stage)
            stage = "predict"
            outputs: dict[str, Any] = dict(self.predictor.predict(inputs))
            lap(stage)
            stage = "postprocess"
            outputs = self._hook("postprocess", self.hooks.postprocess, outputs)
            lap(stage)
            stage = "encode"
            response, tail = encode_parts(
                request, outputs, model_name=self.model_name, model_version=self.model_version
            )
            lap(stage)
        except InferenceError as e:
            if stage != "predict":  # the predictor reports its own failures
                self.telemetry.emit(ERROR, stage=stage, code=e.code, status=e.status, message=e.message)
            raise
        timings["total"] = (time.perf_counter() - start) * 1e3
        batch = batch_size(inputs)
        self.telemetry.emit(
            REQUEST,
            protocol=request.protocol,
            batch_size=batch,
            **{f"{name}_ms": value for name, value in timings.items()},
        )
        return InferenceResult(
            response=response, protocol=request.protocol, batch_size=batch, timings_ms=timings, binary=tail
        )

    def metadata(self) -> dict[str, Any]:
        """Model metadata as the Open Inference Protocol has it (``-1`` for a dynamic axis)."""

        def tensors(specs: Any) -> list[dict[str, Any]]:
            return [
                {
                    "name": t.name,
                    "datatype": t.oip_datatype,
                    "shape": [-1 if d is None else d for d in t.shape],
                }
                for t in specs
            ]

        signature = self.predictor.signature
        return {
            "name": self.model_name,
            "versions": [self.model_version],
            "platform": self.predictor.backend.name,
            "inputs": tensors(signature.inputs),
            "outputs": tensors(signature.outputs),
        }

    def _hook(
        self, stage: str, fn: Callable[[dict[str, Any]], Mapping[str, Any]] | None, data: dict[str, Any]
    ) -> dict[str, Any]:
        if fn is None:
            return data
        try:
            result = fn(dict(data))
        except InferenceError:
            raise
        except Exception as e:
            raise InferenceError(
                f"hook {stage} of {self.hooks.module} failed: {type(e).__name__}: {e}"
            ) from e
        if not isinstance(result, Mapping):
            raise InferenceError(
                f"hook {stage} of {self.hooks.module} returned {type(result).__name__}, "
                "expected a mapping of name to array"
            )
        return dict(result)
