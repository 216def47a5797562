"""One data plane for every transport: decode -> preprocess -> predict -> postprocess -> encode.

The Lambda handler, the HTTP server and the device agent only adapt their transport to
a decoded JSON body and back; everything between is here, written once, each stage
timed. Two request forms are understood:

Direct form (one JSON object, nested lists)::

    {"inputs": {"image": [[...]]}}          or, for a one-input model, {"inputs": [[...]]}
    -> {"model_name": ..., "model_version": ..., "outputs": {"probabilities": [[...]], ...}}

Open Inference Protocol (KServe v2) JSON form::

    {"id"?: str, "parameters"?: {...},
     "inputs": [{"name", "shape", "datatype", "data", "parameters"?}],
     "outputs"?: [{"name", "parameters"?}]}
    -> {"model_name", "model_version", "id"?,
        "outputs": [{"name", "shape", "datatype", "data"}]}

OIP ``data`` is row-major, flat or nested, and is reshaped by ``shape``; ``datatype`` must
be the model input's (``FP32`` for the public float32 input of an int8 model);
``outputs`` selects and orders the response tensors; ``parameters`` are accepted and
ignored. The binary tensor extension (``binary_data_size``) is refused with a clear
reason: it belongs to a transport that carries raw bytes, and plugs in at
``_oip_tensor_data``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import BadRequestError, InferenceError
from .hooks import Hooks
from .predictor import Predictor, batch_size, coerce, to_array
from .signature import NUMPY_DTYPES, OIP_DATATYPES, IOSignature
from .telemetry import ERROR, REQUEST, Telemetry

DIRECT = "direct"
OIP = "oip"
STAGES = ("decode", "preprocess", "predict", "postprocess", "encode")

_FORMS_HINT = (
    'send {"inputs": {"<name>": <nested lists>}} or an Open Inference Protocol request '
    '{"inputs": [{"name", "shape", "datatype", "data"}]}'
)


@dataclass(frozen=True)
class InferenceRequest:
    """A decoded request: which form it came in, and its input arrays by name."""

    protocol: str  # DIRECT | OIP
    inputs: dict[str, Any]
    id: str | None = None  # OIP request id, echoed in the response
    outputs: tuple[str, ...] | None = None  # OIP requested outputs, in order; None = all
    parameters: Mapping[str, Any] = field(default_factory=dict)  # OIP parameters (ignored)


@dataclass(frozen=True)
class InferenceResult:
    """The response body and how long each stage took."""

    response: dict[str, Any]
    protocol: str
    batch_size: int
    timings_ms: Mapping[str, float]  # one entry per STAGES, plus "total"


# -- decode -------------------------------------------------------------------------------


def decode(payload: Any, signature: IOSignature) -> InferenceRequest:
    """A decoded JSON body as an ``InferenceRequest``; ``BadRequestError`` says what is wrong."""
    if not isinstance(payload, Mapping):
        raise BadRequestError(f"request must be a JSON object, got {_json_type(payload)}; {_FORMS_HINT}")
    if "inputs" not in payload:
        raise BadRequestError(f"request has no 'inputs'; {_FORMS_HINT}")
    inputs = payload["inputs"]
    if isinstance(inputs, Mapping):
        return InferenceRequest(
            protocol=DIRECT, inputs={str(k): to_array(str(k), v) for k, v in inputs.items()}
        )
    if not isinstance(inputs, list) or not inputs:
        raise BadRequestError(f"'inputs' must be a non-empty object or list; {_FORMS_HINT}")
    tensors = [isinstance(t, Mapping) for t in inputs]
    if all(tensors):
        return _decode_oip(payload, inputs, signature)
    if any(tensors):
        raise BadRequestError("'inputs' mixes tensor objects and plain data")
    if len(signature.inputs) != 1:
        names = ", ".join(repr(n) for n in signature.input_names)
        raise BadRequestError(
            f"'inputs' is a list, which only a one-input model accepts; this model has inputs {names}: "
            'send {"inputs": {"<name>": ...}}'
        )
    name = signature.inputs[0].name
    return InferenceRequest(protocol=DIRECT, inputs={name: to_array(name, inputs)})


def _decode_oip(payload: Mapping[str, Any], tensors: list[Any], signature: IOSignature) -> InferenceRequest:
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequestError(f"'id' must be a string, got {_json_type(request_id)}")
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise BadRequestError(f"'parameters' must be an object, got {_json_type(parameters)}")

    arrays: dict[str, Any] = {}
    for position, tensor in enumerate(tensors):
        name, arr = _decode_oip_tensor(position, tensor, signature)
        if name in arrays:
            raise BadRequestError(f"input {name!r} appears twice in 'inputs'")
        arrays[name] = arr

    requested = payload.get("outputs")
    outputs: tuple[str, ...] | None = None
    if requested is not None:
        if not isinstance(requested, list) or not all(
            isinstance(o, Mapping) and isinstance(o.get("name"), str) for o in requested
        ):
            raise BadRequestError('\'outputs\' must be a list of {"name": "<output name>"} objects')
        outputs = tuple(dict.fromkeys(o["name"] for o in requested)) or None  # [] = all, as KServe
    return InferenceRequest(
        protocol=OIP, inputs=arrays, id=request_id, outputs=outputs, parameters=parameters
    )


def _decode_oip_tensor(position: int, tensor: Mapping[str, Any], signature: IOSignature) -> tuple[str, Any]:
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequestError(f"inputs[{position}]: 'name' must be a non-empty string")
    where = f"input {name!r}"
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise BadRequestError(f"{where}: 'shape' must be a list of non-negative integers, got {shape!r}")
    datatype = tensor.get("datatype")
    if datatype not in NUMPY_DTYPES:
        raise BadRequestError(
            f"{where}: unknown datatype {datatype!r}; known: {', '.join(sorted(NUMPY_DTYPES))}"
        )
    if name in signature.input_names:
        expected = signature.input(name).oip_datatype
        if datatype != expected:
            raise BadRequestError(f"{where}: datatype {datatype} does not match the model's {expected}")
    arr = _oip_tensor_data(name, tensor)
    count = math.prod(shape)
    if arr.size != count:
        raise BadRequestError(f"{where}: 'data' has {arr.size} elements but shape {shape} needs {count}")
    arr = arr.reshape(shape)
    if datatype != "BYTES":
        arr = coerce(name, arr, NUMPY_DTYPES[datatype])
    return name, arr


def _oip_tensor_data(name: str, tensor: Mapping[str, Any]) -> np.ndarray:
    """The tensor's JSON ``data`` as an array. The binary extension will read here."""
    where = f"input {name!r}"
    parameters = tensor.get("parameters") or {}
    if isinstance(parameters, Mapping) and "binary_data_size" in parameters:
        raise BadRequestError(
            f"{where}: binary tensor data is not accepted by this endpoint; send the values in 'data'"
        )
    if "data" not in tensor:
        raise BadRequestError(f"{where}: no 'data'")
    data = tensor["data"]
    if not isinstance(data, list):
        data = [data]  # a single element
    if not data:
        return np.zeros((0,), dtype=np.float32)
    return to_array(name, data)


# -- encode -------------------------------------------------------------------------------


def encode(
    request: InferenceRequest, outputs: Mapping[str, Any], *, model_name: str, model_version: str
) -> dict[str, Any]:
    """The response body for ``request`` in its own form, from public output arrays."""
    arrays = {name: np.asarray(value) for name, value in outputs.items()}
    if request.outputs is not None:
        unknown = [n for n in request.outputs if n not in arrays]
        if unknown:
            available = ", ".join(repr(n) for n in arrays)
            raise BadRequestError(f"unknown output {unknown[0]!r} requested; available: {available}")
        arrays = {n: arrays[n] for n in request.outputs}
    if request.protocol == OIP:
        body: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
        if request.id is not None:
            body["id"] = request.id
        body["outputs"] = [
            {
                "name": name,
                "shape": list(arr.shape),
                "datatype": _oip_datatype(name, arr),
                "data": _json_values(name, arr.reshape(-1)),
            }
            for name, arr in arrays.items()
        ]
        return body
    return {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": {name: _json_values(name, arr) for name, arr in arrays.items()},
    }


def _oip_datatype(name: str, arr: np.ndarray) -> str:
    if arr.dtype.kind in "US":
        return "BYTES"
    datatype = OIP_DATATYPES.get(arr.dtype.name)
    if datatype is None or datatype == "BYTES":
        raise InferenceError(
            f"output {name!r}: dtype {arr.dtype.name} has no Open Inference Protocol datatype"
        )
    return datatype


def _json_values(name: str, arr: np.ndarray) -> Any:
    if arr.dtype.kind in "fc" and not bool(np.all(np.isfinite(arr))):
        # JSON has no NaN or infinity; a model producing them is broken, not the request.
        raise InferenceError(f"output {name!r} contains NaN or infinity")
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
        """The response body for a decoded JSON request body; ``BadRequestError`` on bad input."""
        return self.run(payload).response

    def run(self, payload: Any) -> InferenceResult:
        """Like ``infer``, with the protocol, batch size and per-stage timings."""
        timings: dict[str, float] = {}
        start = mark = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            timings[stage] = (now - mark) * 1e3
            mark = now

        stage = "decode"
        try:
            request = decode(payload, self.predictor.signature)
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
            response = encode(request, outputs, model_name=self.model_name, model_version=self.model_version)
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
            response=response, protocol=request.protocol, batch_size=batch, timings_ms=timings
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
