"""The binary tensor data extension of the Open Inference Protocol, in the data plane.

Requests carry a JSON header and a binary tail; inputs with ``binary_data_size`` read
their bytes from the tail in order, outputs asked in binary come back in
``InferenceResult.binary``. Every answer is checked against the JSON path's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from runtime_helpers import Models

from edgepack.runtime.backends.litert import load
from edgepack.runtime.dataplane import DataPlane, InferenceResult, decode
from edgepack.runtime.errors import BadRequestError
from edgepack.runtime.hooks import load_hooks
from edgepack.runtime.predictor import Predictor
from edgepack.runtime.signature import IOSignature, TensorSpec

PAIR = IOSignature(
    inputs=(TensorSpec("left", "float32", (None, 2)), TensorSpec("right", "float32", (None, 3))),
    outputs=(TensorSpec("total", "float32", (None, 1)),),
)


@pytest.fixture(scope="module")
def plane(fp32_artifact: Path, sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> DataPlane:
    """The digits model with the sample's hooks: outputs ``probabilities`` (FP32), ``label`` (INT64)."""
    root = tmp_path_factory.mktemp("hooks")
    (root / "edgepack_user_hooks.py").write_text((sample_dir / "hooks.py").read_text())
    predictor = Predictor.from_artifact(fp32_artifact)
    return DataPlane(
        predictor,
        model_name="digits",
        model_version="1.0.0",
        hooks=load_hooks("edgepack_user_hooks", root),
    )


@pytest.fixture(scope="module")
def pair(tflite_models: Models) -> DataPlane:
    """Two float inputs, ``left`` (None, 2) and ``right`` (None, 3): total = sum(left) + 10 sum(right)."""
    backend = load(tflite_models.pair, {})
    predictor = Predictor(backend, PAIR, ["a", "b"], [backend.signature.outputs[0].name])
    return DataPlane(predictor, model_name="pair", model_version="1")


def _json_tensor(name: str, arr: np.ndarray, datatype: str = "FP32") -> dict[str, Any]:
    return {"name": name, "shape": list(arr.shape), "datatype": datatype, "data": arr.ravel().tolist()}


def _binary_tensor(name: str, arr: np.ndarray, datatype: str = "FP32") -> tuple[dict[str, Any], bytes]:
    raw = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    tensor = {
        "name": name,
        "shape": list(arr.shape),
        "datatype": datatype,
        "parameters": {"binary_data_size": len(raw)},
    }
    return tensor, raw


def _outputs(result: InferenceResult) -> dict[str, np.ndarray]:
    """Every output of an OIP answer as an array, whether sent as JSON data or binary."""
    dtypes = {"FP32": "<f4", "INT64": "<i8"}
    arrays, offset = {}, 0
    for out in result.response["outputs"]:
        if "data" in out:
            arrays[out["name"]] = np.asarray(out["data"], dtype=dtypes[out["datatype"]]).reshape(out["shape"])
            continue
        size = out["parameters"]["binary_data_size"]
        chunk = result.binary[offset : offset + size]
        arrays[out["name"]] = np.frombuffer(chunk, dtype=dtypes[out["datatype"]]).reshape(out["shape"])
        offset += size
    assert offset == len(result.binary)
    return arrays


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), name


# -- round trips ---------------------------------------------------------------------------


def test_binary_input_answers_as_json_input(plane: DataPlane, tflite_models: Models) -> None:
    images = tflite_models.images[:3]
    by_json = plane.run({"inputs": [_json_tensor("image", images)]})
    tensor, raw = _binary_tensor("image", images)
    by_binary = plane.run({"inputs": [tensor]}, binary=raw)
    assert by_binary.response == by_json.response and by_binary.binary == b""
    assert by_binary.protocol == "oip" and by_binary.batch_size == 3


@pytest.mark.parametrize("view", [bytes, memoryview, bytearray], ids=["bytes", "memoryview", "bytearray"])
def test_every_output_in_binary(plane: DataPlane, tflite_models: Models, view: Any) -> None:
    images = tflite_models.images[:4]
    by_json = plane.run({"id": "r", "inputs": [_json_tensor("image", images)]})
    tensor, raw = _binary_tensor("image", images)
    request = {"id": "r", "parameters": {"binary_data_output": True}, "inputs": [tensor]}
    by_binary = plane.run(request, binary=view(raw))
    header = by_binary.response
    assert header["id"] == "r" and [o["name"] for o in header["outputs"]] == ["probabilities", "label"]
    assert header["outputs"][0] == {
        "name": "probabilities",
        "shape": [4, 10],
        "datatype": "FP32",
        "parameters": {"binary_data_size": 4 * 10 * 4},
    }
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 4 * 8}
    assert len(by_binary.binary) == 160 + 32
    json.dumps(header)  # the header is JSON-able
    _same(_outputs(by_binary), _outputs(by_json))
    np.testing.assert_allclose(_outputs(by_binary)["probabilities"], tflite_models.reference[:4], atol=1e-5)


def test_per_output_setting_overrides_the_request(plane: DataPlane, tflite_models: Models) -> None:
    images = tflite_models.images[:2]
    tensor, raw = _binary_tensor("image", images)
    by_json = _outputs(plane.run({"inputs": [_json_tensor("image", images)]}))
    result = plane.run(
        {
            "parameters": {"binary_data_output": True},
            "inputs": [tensor],
            "outputs": [{"name": "label", "parameters": {"binary_data": False}}, {"name": "probabilities"}],
        },
        binary=raw,
    )
    label, probabilities = result.response["outputs"]
    assert "data" in label and "data" not in probabilities
    assert result.binary == by_json["probabilities"].astype("<f4").tobytes()
    one = plane.run(
        {
            "inputs": [tensor],
            "outputs": [{"name": "probabilities"}, {"name": "label", "parameters": {"binary_data": True}}],
        },
        binary=raw,
    )
    assert "data" in one.response["outputs"][0] and "data" not in one.response["outputs"][1]
    assert one.binary == by_json["label"].astype("<i8").tobytes()
    _same(_outputs(one), {"probabilities": by_json["probabilities"], "label": by_json["label"]})


def test_binary_transport_with_an_empty_tail_answers_json(plane: DataPlane, tflite_models: Models) -> None:
    request = {"inputs": [_json_tensor("image", tflite_models.images[:1])]}
    assert plane.run(request, binary=b"").response == plane.infer(request)
    direct = {"inputs": {"image": tflite_models.images[:1].tolist()}}
    assert plane.run(direct, binary=b"").response == plane.infer(direct)


def test_mixed_json_and_binary_inputs(pair: DataPlane) -> None:
    left = np.array([[1.0, 2.0], [0.0, 0.5]], np.float32)
    right = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 2.0]], np.float32)
    by_json = pair.run({"inputs": [_json_tensor("left", left), _json_tensor("right", right)]})
    np.testing.assert_allclose(by_json.response["outputs"][0]["data"], [33.0, 20.5])
    right_bin, right_raw = _binary_tensor("right", right)
    mixed = pair.run({"inputs": [_json_tensor("left", left), right_bin]}, binary=right_raw)
    assert mixed.response == by_json.response
    # Both binary, tail in the order of the inputs (right first here), outputs binary too.
    left_bin, left_raw = _binary_tensor("left", left)
    both = pair.run(
        {"parameters": {"binary_data_output": True}, "inputs": [right_bin, left_bin]},
        binary=right_raw + left_raw,
    )
    _same(_outputs(both), _outputs(by_json))


def test_binary_input_is_read_without_a_copy_and_in_little_endian(pair: DataPlane) -> None:
    left = np.array([[1.0, 2.0]], np.float32)
    tensor, raw = _binary_tensor("left", left)
    request = decode({"inputs": [tensor]}, pair.predictor.signature, binary=raw)
    arr = request.inputs["left"]
    assert arr.dtype == np.float32 and arr.shape == (1, 2) and arr.tolist() == [[1.0, 2.0]]
    assert not arr.flags.writeable  # a view on the transport's bytes (np.frombuffer)
    big_endian = left.astype(">f4").tobytes()
    assert decode({"inputs": [tensor]}, pair.predictor.signature, binary=big_endian).inputs[
        "left"
    ].tolist() != [[1.0, 2.0]]


def test_bool_and_bytes_binary_inputs_decode() -> None:
    signature = IOSignature(
        inputs=(TensorSpec("flags", "bool", (None, 3)), TensorSpec("words", "object", (None, 2)))
    )
    words = [b"ab", b""]
    bytes_tail = b"".join(len(w).to_bytes(4, "little") + w for w in words)
    request = decode(
        {
            "inputs": [
                {"name": "flags", "shape": [1, 3], "datatype": "BOOL", "parameters": {"binary_data_size": 3}},
                {
                    "name": "words",
                    "shape": [1, 2],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(bytes_tail)},
                },
            ]
        },
        signature,
        binary=b"\x01\x00\x01" + bytes_tail,
    )
    assert request.inputs["flags"].tolist() == [[True, False, True]]
    assert request.inputs["words"].tolist() == [[b"ab", b""]]


# -- refusals: 400 with a bounded reason, and serving goes on --------------------------------


def _image_bin(images: np.ndarray, **parameters: Any) -> dict[str, Any]:
    tensor, _ = _binary_tensor("image", images)
    tensor["parameters"].update(parameters)
    return tensor


ONE = np.zeros((1, 8, 8, 1), np.float32)
ONE_RAW = ONE.tobytes()

BINARY_REFUSALS: list[tuple[str, dict[str, Any], bytes | None, str]] = [
    (
        "size-str",
        {"inputs": [_image_bin(ONE, binary_data_size="256")]},
        ONE_RAW,
        "must be a non-negative integer, got '256'",
    ),
    (
        "size-negative",
        {"inputs": [_image_bin(ONE, binary_data_size=-1)]},
        ONE_RAW,
        "non-negative integer, got -1",
    ),
    (
        "size-bool",
        {"inputs": [_image_bin(ONE, binary_data_size=True)]},
        ONE_RAW,
        "non-negative integer, got True",
    ),
    ("size-float", {"inputs": [_image_bin(ONE, binary_data_size=256.0)]}, ONE_RAW, "non-negative integer"),
    (
        "size-null",
        {"inputs": [_image_bin(ONE, binary_data_size=None)]},
        ONE_RAW,
        "non-negative integer, got None",
    ),
    ("size-giant", {"inputs": [_image_bin(ONE, binary_data_size=10**5000)]}, ONE_RAW, "needs 256"),
    (
        "size-not-shape",
        {"inputs": [_image_bin(ONE, binary_data_size=255)]},
        ONE_RAW[:255],
        r"binary_data_size is 255 bytes but shape \[1, 8, 8, 1\] of FP32 needs 256",
    ),
    (
        "tail-longer",
        {"inputs": [_image_bin(ONE)]},
        ONE_RAW + b"\0",
        "carries 257 bytes of binary data but .* add up to 256",
    ),
    ("tail-shorter", {"inputs": [_image_bin(ONE)]}, ONE_RAW[:-4], "runs past the end of the binary data"),
    (
        "tail-without-binary-inputs",
        {"inputs": [{"name": "image", "shape": [1, 8, 8, 1], "datatype": "FP32", "data": [0.0] * 64}]},
        b"\0\0\0\0",
        "carries 4 bytes of binary data but the inputs' binary_data_size add up to 0",
    ),
    (
        "tail-with-direct-form",
        {"inputs": {"image": ONE.tolist()}},
        b"\0",
        "binary data comes only with Open Inference",
    ),
    (
        "data-and-binary",
        {"inputs": [{**_image_bin(ONE), "data": [0.0] * 64}]},
        ONE_RAW,
        "has both 'data' and 'binary_data_size'",
    ),
    (
        "no-transport-input",
        {"inputs": [_image_bin(ONE)]},
        None,
        "binary tensor data is not accepted by this endpoint",
    ),
    (
        "no-transport-output",
        {"parameters": {"binary_data_output": True}, "inputs": [_image_bin(ONE)]},
        None,
        "binary tensor data is not accepted",
    ),
    (
        "no-transport-json-input-binary-output",
        {
            "parameters": {"binary_data_output": True},
            "inputs": [{"name": "image", "shape": [1, 8, 8, 1], "datatype": "FP32", "data": [0.0] * 64}],
        },
        None,
        "binary outputs are not available on this endpoint",
    ),
    (
        "no-transport-one-output",
        {
            "inputs": [{"name": "image", "shape": [1, 8, 8, 1], "datatype": "FP32", "data": [0.0] * 64}],
            "outputs": [{"name": "label", "parameters": {"binary_data": True}}],
        },
        None,
        "binary outputs are not available",
    ),
    (
        "output-flag-str",
        {"parameters": {"binary_data_output": "true"}, "inputs": [_image_bin(ONE)]},
        ONE_RAW,
        "'binary_data_output' must be true or false, got a string",
    ),
    (
        "output-flag-int",
        {"parameters": {"binary_data_output": 1}, "inputs": [_image_bin(ONE)]},
        ONE_RAW,
        "must be true or false, got a number",
    ),
    (
        "per-output-flag",
        {"inputs": [_image_bin(ONE)], "outputs": [{"name": "label", "parameters": {"binary_data": "yes"}}]},
        ONE_RAW,
        "output 'label': 'parameters': 'binary_data' must be true or false",
    ),
    (
        "direct-form-binary-output",
        {"parameters": {"binary_data_output": True}, "inputs": {"image": ONE.tolist()}},
        b"",
        "binary outputs need the Open Inference Protocol form",
    ),
    ("nan", {"inputs": [_image_bin(ONE)]}, np.full(64, np.nan, "<f4").tobytes(), "contains NaN or infinity"),
    (
        "wrong-datatype",
        {"inputs": [{**_image_bin(ONE), "datatype": "INT32"}]},
        ONE_RAW,
        "datatype INT32 does not match the model's FP32",
    ),
    (
        "shape-mismatch",
        {"inputs": [_image_bin(np.zeros((1, 64), np.float32))]},
        ONE_RAW,
        r"shape \(1, 64\) does not match",
    ),
]


@pytest.mark.parametrize(
    ("request_", "tail", "match"), [r[1:] for r in BINARY_REFUSALS], ids=[r[0] for r in BINARY_REFUSALS]
)
def test_binary_refusals(
    plane: DataPlane, tflite_models: Models, request_: dict[str, Any], tail: bytes | None, match: str
) -> None:
    valid_tensor, valid_raw = _binary_tensor("image", tflite_models.images[:2])
    valid = {"parameters": {"binary_data_output": True}, "inputs": [valid_tensor]}
    before = plane.run(valid, binary=valid_raw)
    with pytest.raises(BadRequestError, match=match) as info:
        plane.run(request_, binary=tail)
    assert info.value.status == 400
    assert len(json.dumps({"error": info.value.to_dict()})) <= 2048
    after = plane.run(valid, binary=valid_raw)
    assert after.response == before.response and after.binary == before.binary


@pytest.mark.parametrize(
    ("datatype", "parameters_size", "tail", "match"),
    [
        ("BYTES", 7, b"\x05\0\0\0abc", "not 2 length-prefixed elements"),
        ("BYTES", 3, b"\x01\0\0", "not 2 length-prefixed elements"),
        ("BYTES", 15, b"\x01\0\0\0a\x01\0\0\0b\x01\0\0\0c", "not 2 length-prefixed elements"),
        ("BOOL", 2, b"\x01\x02", "BOOL binary data must be bytes 0 or 1"),
        ("BYTES", 10**5000, b"", "binary_data_size <int too large to show> runs past the end"),
    ],
    ids=["bytes-overrun", "bytes-short-prefix", "bytes-too-many", "bool-not-0-or-1", "bytes-giant-size"],
)
def test_bytes_and_bool_binary_refusals(datatype: str, parameters_size: int, tail: bytes, match: str) -> None:
    signature = IOSignature(inputs=(TensorSpec("x", "object" if datatype == "BYTES" else "bool", (None, 2)),))
    tensor = {
        "name": "x",
        "shape": [1, 2],
        "datatype": datatype,
        "parameters": {"binary_data_size": parameters_size},
    }
    with pytest.raises(BadRequestError, match=match):
        decode({"inputs": [tensor]}, signature, binary=tail)
