"""The data plane: direct and Open Inference Protocol forms, hooks, stage timings."""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from runtime_helpers import Models, load_event

from edgepack.runtime.dataplane import DIRECT, OIP, STAGES, DataPlane, decode, encode, parse_json
from edgepack.runtime.errors import BadRequestError, InferenceError
from edgepack.runtime.hooks import Hooks, load_hooks
from edgepack.runtime.predictor import Predictor
from edgepack.runtime.signature import IOSignature, TensorSpec
from edgepack.runtime.telemetry import Telemetry, TelemetryEvent


@pytest.fixture(scope="module")
def predictor(fp32_artifact: Path) -> Predictor:
    return Predictor.from_artifact(fp32_artifact)


@pytest.fixture(scope="module")
def plane(predictor: Predictor, sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> DataPlane:
    root = tmp_path_factory.mktemp("hooks")
    (root / "edgepack_user_hooks.py").write_text((sample_dir / "hooks.py").read_text())
    hooks = load_hooks("edgepack_user_hooks", root)
    return DataPlane(predictor, model_name="digits", model_version="1.0.0", hooks=hooks)


def _oip(images: np.ndarray, **extra: Any) -> dict[str, Any]:
    tensor = {
        "name": "image",
        "shape": list(images.shape),
        "datatype": "FP32",
        "data": images.ravel().tolist(),
    }
    return {"inputs": [tensor], **extra}


def test_direct_form(plane: DataPlane, tflite_models: Models) -> None:
    response = plane.infer({"inputs": {"image": tflite_models.images[:2].tolist()}})
    assert response["model_name"] == "digits" and response["model_version"] == "1.0.0"
    assert list(response["outputs"]) == ["probabilities", "label"]
    np.testing.assert_allclose(response["outputs"]["probabilities"], tflite_models.reference[:2], atol=1e-5)
    assert response["outputs"]["label"] == np.argmax(tflite_models.reference[:2], axis=1).tolist()


def test_direct_list_form_for_a_one_input_model(plane: DataPlane) -> None:
    event = load_event("direct.json")
    by_name = plane.infer(event)
    as_list = plane.infer({"inputs": event["inputs"]["image"]})
    assert as_list == by_name


def test_oip_sample_event(plane: DataPlane, tflite_models: Models) -> None:
    event = load_event("oip.json")
    response = plane.infer(event)
    assert set(response) == {"model_name", "model_version", "id", "outputs"}
    assert response["id"] == "sample-1"
    probabilities, label = response["outputs"]
    assert probabilities["name"] == "probabilities"
    assert probabilities["shape"] == [2, 10] and probabilities["datatype"] == "FP32"
    assert len(probabilities["data"]) == 20 and all(isinstance(v, float) for v in probabilities["data"])
    assert label == {"name": "label", "shape": [2], "datatype": "INT64", "data": label["data"]}
    images = np.asarray(event["inputs"][0]["data"], np.float32).reshape(2, 8, 8, 1)
    expected = plane.predictor.predict({"image": images})["probabilities"]
    np.testing.assert_allclose(np.reshape(probabilities["data"], (2, 10)), expected)


def test_oip_nested_data_and_parameters_are_accepted(plane: DataPlane, tflite_models: Models) -> None:
    images = tflite_models.images[:3]
    flat = plane.infer(_oip(images))
    nested = _oip(images, parameters={"content_type": "np"})
    nested["inputs"][0]["data"] = images.tolist()
    nested["inputs"][0]["parameters"] = {"content_type": "np"}
    assert plane.infer(nested) == flat
    assert "id" not in flat


def test_oip_requested_outputs_select_and_order(plane: DataPlane, tflite_models: Models) -> None:
    response = plane.infer(_oip(tflite_models.images[:2], outputs=[{"name": "label"}]))
    assert [o["name"] for o in response["outputs"]] == ["label"]
    both = plane.infer(_oip(tflite_models.images[:2], outputs=[{"name": "label"}, {"name": "probabilities"}]))
    assert [o["name"] for o in both["outputs"]] == ["label", "probabilities"]


MALFORMED: list[tuple[str, Any, str]] = [
    ("not an object", [1, 2], "request must be a JSON object, got a list"),
    ("no inputs", {"instances": [[0]]}, "request has no 'inputs'"),
    ("inputs a string", {"inputs": "abc"}, "'inputs' must be a non-empty object or list"),
    ("inputs empty", {"inputs": []}, "'inputs' must be a non-empty"),
    ("mixed", {"inputs": [{"name": "image"}, [0.0]]}, "mixes tensor objects and plain data"),
    ("no name", {"inputs": [{"shape": [1], "datatype": "FP32", "data": [0]}]}, r"inputs\[0\]: 'name'"),
    (
        "shape",
        {"inputs": [{"name": "image", "shape": "1,8", "datatype": "FP32", "data": [0]}]},
        "'shape' must be",
    ),
    (
        "negative",
        {"inputs": [{"name": "image", "shape": [-1], "datatype": "FP32", "data": []}]},
        "non-negative",
    ),
    (
        "datatype",
        {"inputs": [{"name": "image", "shape": [1], "datatype": "FP33", "data": [0]}]},
        "unknown datatype",
    ),
    (
        "FP64",
        {"inputs": [{"name": "image", "shape": [1], "datatype": "FP64", "data": [0]}]},
        "FP64 does not match",
    ),
    ("no data", {"inputs": [{"name": "image", "shape": [1, 8, 8, 1], "datatype": "FP32"}]}, "no 'data'"),
    (
        "count",
        {"inputs": [{"name": "image", "shape": [1, 8, 8, 1], "datatype": "FP32", "data": [0.0] * 63}]},
        r"'data' has 63 elements but shape \[1, 8, 8, 1\] needs 64",
    ),
    (
        "binary",
        {
            "inputs": [
                {"name": "image", "shape": [1], "datatype": "FP32", "parameters": {"binary_data_size": 4}}
            ]
        },
        "binary tensor data is not accepted",
    ),
    (
        "id",
        {"id": 7, "inputs": [{"name": "image", "shape": [1], "datatype": "FP32", "data": [0]}]},
        "'id' must",
    ),
    (
        "outputs",
        {"inputs": [{"name": "image", "shape": [1], "datatype": "FP32", "data": [0]}], "outputs": ["label"]},
        "'outputs' must be a list of",
    ),
]


@pytest.mark.parametrize(("payload", "match"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_requests(plane: DataPlane, payload: Any, match: str) -> None:
    with pytest.raises(BadRequestError, match=match):
        plane.infer(payload)


def test_duplicate_oip_input(plane: DataPlane, tflite_models: Models) -> None:
    payload = _oip(tflite_models.images[:1])
    payload["inputs"].append(copy.deepcopy(payload["inputs"][0]))
    with pytest.raises(BadRequestError, match="'image' appears twice"):
        plane.infer(payload)


def test_unknown_requested_output(plane: DataPlane, tflite_models: Models) -> None:
    with pytest.raises(
        BadRequestError, match="unknown output 'logits' requested; available: 'probabilities'"
    ):
        plane.infer(_oip(tflite_models.images[:1], outputs=[{"name": "logits"}]))


def test_model_validation_reaches_both_forms(plane: DataPlane) -> None:
    with pytest.raises(BadRequestError, match="unknown input 'img'"):
        plane.infer({"inputs": {"img": [[0.0]]}})
    wrong_shape = {"inputs": [{"name": "image", "shape": [1, 8, 8], "datatype": "FP32", "data": [0.0] * 64}]}
    with pytest.raises(BadRequestError, match=r"shape \(1, 8, 8\) does not match \(None, 8, 8, 1\)"):
        plane.infer(wrong_shape)


def test_list_form_refused_for_a_two_input_model(tflite_models: Models) -> None:
    two = IOSignature(inputs=(TensorSpec("a", "float32", (None, 2)), TensorSpec("b", "float32", (None, 3))))
    with pytest.raises(
        BadRequestError, match="only a one-input model accepts; this model has inputs 'a', 'b'"
    ):
        decode({"inputs": [[1.0, 2.0]]}, two)


def test_decode_and_encode_stand_alone(predictor: Predictor, tflite_models: Models) -> None:
    request = decode(_oip(tflite_models.images[:2], id="r1"), predictor.signature)
    assert request.protocol == OIP and request.id == "r1" and request.outputs is None
    assert request.inputs["image"].dtype == np.float32 and request.inputs["image"].shape == (2, 8, 8, 1)
    outputs = predictor.predict(request.inputs)
    body = encode(request, outputs, model_name="m", model_version="2")
    assert body["id"] == "r1" and body["outputs"][0]["shape"] == [2, 10]
    direct = decode({"inputs": {"image": tflite_models.images[:1].tolist()}}, predictor.signature)
    assert direct.protocol == DIRECT
    assert set(encode(direct, outputs, model_name="m", model_version="2")["outputs"]) == {"probabilities"}


def test_non_finite_outputs_are_an_internal_error() -> None:
    request = decode({"inputs": {"x": [1.0]}}, IOSignature(inputs=()))
    with pytest.raises(InferenceError, match="output 'y' contains NaN") as info:
        encode(request, {"y": np.array([np.nan])}, model_name="m", model_version="1")
    assert info.value.status == 500


def test_stage_timings_and_request_event(predictor: Predictor, tflite_models: Models) -> None:
    events: list[TelemetryEvent] = []
    plane = DataPlane(
        predictor, model_name="digits", model_version="1.0.0", telemetry=Telemetry([events.append])
    )
    result = plane.run(_oip(tflite_models.images[:4]))
    assert result.protocol == OIP and result.batch_size == 4
    assert set(result.timings_ms) == {*STAGES, "total"}
    assert result.timings_ms["predict"] > 0
    assert result.timings_ms["total"] >= sum(result.timings_ms[s] for s in STAGES) * 0.99
    (request,) = events
    assert request.name == "request" and request.fields["batch_size"] == 4
    assert request.fields["predict_ms"] == result.timings_ms["predict"]
    with pytest.raises(BadRequestError):
        plane.run({"inputs": "nope"})
    assert events[-1].name == "error" and events[-1].fields["stage"] == "decode"


def _hooks(tmp_path: Path, source: str) -> Hooks:
    (tmp_path / "user_hooks.py").write_text(textwrap.dedent(source))
    return load_hooks("user_hooks", tmp_path)


def test_preprocess_may_convert_raw_inputs(
    predictor: Predictor, tflite_models: Models, tmp_path: Path
) -> None:
    hooks = _hooks(
        tmp_path,
        """
        import numpy as np

        def preprocess(inputs):
            # Clients send 0..16 pixel counts as a flat list; the model wants [0, 1] images.
            return {"image": np.asarray(inputs["pixels"], np.float32).reshape(-1, 8, 8, 1) / 16}
        """,
    )
    plane = DataPlane(predictor, model_name="digits", model_version="1", hooks=hooks)
    images = tflite_models.images[:2]
    response = plane.infer({"inputs": {"pixels": (images * 16).reshape(2, 64).tolist()}})
    np.testing.assert_allclose(response["outputs"]["probabilities"], tflite_models.reference[:2], atol=1e-5)


def test_hook_failures(predictor: Predictor, tflite_models: Models, tmp_path: Path) -> None:
    hooks = _hooks(
        tmp_path,
        """
        from edgepack.runtime.errors import BadRequestError

        def preprocess(inputs):
            if "reject" in inputs:
                raise BadRequestError("input 'reject': refused by the project's hook")
            if "crash" in inputs:
                raise KeyError("oops")
            return inputs

        def postprocess(outputs):
            return None
        """,
    )
    plane = DataPlane(predictor, model_name="digits", model_version="1", hooks=hooks)
    with pytest.raises(BadRequestError, match="refused by the project's hook"):
        plane.infer({"inputs": {"reject": [1]}})
    with pytest.raises(InferenceError, match="hook preprocess of user_hooks failed: KeyError") as crash:
        plane.infer({"inputs": {"crash": [1]}})
    assert crash.value.status == 500
    with pytest.raises(InferenceError, match="hook postprocess of user_hooks returned NoneType"):
        plane.infer({"inputs": {"image": tflite_models.images[:1].tolist()}})


def test_metadata(plane: DataPlane) -> None:
    assert plane.metadata() == {
        "name": "digits",
        "versions": ["1.0.0"],
        "platform": "litert",
        "inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 8, 8, 1]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
    }


# -- defects found by fuzzing: each a 400 with a bounded reason, and serving goes on -------

MAX_ERROR_JSON = 2048


def _image_tensor(**changes: Any) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": "image", "shape": [1, 8, 8, 1], "datatype": "FP32", "data": [0.5] * 64}
    tensor.update(changes)
    return tensor


def _nested(depth: int, leaf: Any = 0.0) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def _direct_image(tflite_models: Models) -> list[Any]:
    image: list[Any] = tflite_models.images[:1].tolist()
    return image


def _assert_refused(plane: DataPlane, payload: Any, match: str, **run: Any) -> BadRequestError:
    """``payload`` gets a 400 with a bounded reason; a valid request answers as before."""
    valid = load_event("direct.json")
    before = plane.infer(valid)
    with pytest.raises(BadRequestError, match=match) as info:
        plane.run(payload, **run)
    error = info.value
    assert error.status == 400 and error.code == "bad_request"
    assert len(error.message) <= 512
    assert len(json.dumps({"error": error.to_dict()})) <= MAX_ERROR_JSON
    assert plane.infer(valid) == before
    return error


DEFECTS: list[tuple[str, Any, str]] = [
    # 1. integers beyond Python's 4,300-digit str limit (a direct event carries them as ints)
    ("giant-int-data", lambda m: {"inputs": {"image": [[[[10**5000]] * 8] * 8]}}, "not an array of numbers"),
    ("giant-int-dim", lambda m: {"inputs": [_image_tensor(shape=[10**5000, 64])]}, "describes more than"),
    (
        "giant-int-datatype",
        lambda m: {"inputs": [_image_tensor(datatype=10**5000)]},
        "<int too large to show>",
    ),
    ("giant-int-id", lambda m: {"id": 10**5000, "inputs": [_image_tensor()]}, "'id' must be a string"),
    # 2. huge or too many dimensions
    ("33-dims", lambda m: {"inputs": [_image_tensor(shape=[1] * 33)]}, "has 33 dimensions; at most 32"),
    ("1000-dims", lambda m: {"inputs": [_image_tensor(shape=[1] * 1000)]}, "has 1000 dimensions"),
    ("2**63-dim", lambda m: {"inputs": [_image_tensor(shape=[2**63, 1])]}, "describes more than"),
    (
        "product-overflow",
        lambda m: {"inputs": [_image_tensor(shape=[2**20, 2**20, 2**20], data=[])]},
        "describes more than 268435456 elements",
    ),
    ("zero-with-huge", lambda m: {"inputs": [_image_tensor(shape=[0, 2**40, 2**40], data=[])]}, "describes"),
    # 3. nesting deeper than Python's recursion limit and numpy's 64 dimensions
    ("deep-direct", lambda m: {"inputs": {"image": _nested(5000)}}, "not a rectangular array"),
    ("deep-list-form", lambda m: {"inputs": _nested(100)}, "not a rectangular array"),
    ("deep-oip-data", lambda m: {"inputs": [_image_tensor(data=_nested(3000))]}, "not a rectangular array"),
    (
        "deep-shape",
        lambda m: {"inputs": [_image_tensor(shape=_nested(3000))]},
        r"'shape' must be .*\[\[\[\.\.\.\]\]\]",
    ),
    # 4. datatype of the wrong JSON type
    (
        "datatype-list",
        lambda m: {"inputs": [_image_tensor(datatype=["FP32"])]},
        r"unknown datatype \['FP32'\]",
    ),
    (
        "datatype-object",
        lambda m: {"inputs": [_image_tensor(datatype={"a": 1})]},
        "unknown datatype {'a': 1}",
    ),
    ("datatype-number", lambda m: {"inputs": [_image_tensor(datatype=32)]}, "unknown datatype 32"),
    # 5. booleans among numbers
    (
        "bools-in-oip-floats",
        lambda m: {"inputs": [_image_tensor(data=[True] + [0.5] * 62 + [False])]},
        r"mixes booleans \(true/false\) with numbers",
    ),
    (
        "bools-in-nested-oip",
        lambda m: {"inputs": [_image_tensor(data=[[[[0.5]] * 7 + [[True]]] * 8])]},
        "mixes booleans",
    ),
    (
        "bools-in-direct",
        lambda m: {"inputs": {"image": [[[[0.5]] * 7 + [[False]]] * 8]}},
        "mixes booleans",
    ),
    ("only-bools-direct", lambda m: {"inputs": {"image": [[[[True]] * 8] * 8]}}, "got booleans"),
    (
        "bool-datatype",
        lambda m: {"inputs": [_image_tensor(datatype="BOOL", data=[True] * 64)]},
        "BOOL does not",
    ),
    # 6. parameters of the wrong type, falsy ones included
    ("params-0", lambda m: {"parameters": 0, "inputs": [_image_tensor()]}, "'parameters' must be an object"),
    ("params-empty-str", lambda m: {"parameters": "", "inputs": [_image_tensor()]}, "got a string"),
    ("params-empty-list", lambda m: {"parameters": [], "inputs": [_image_tensor()]}, "got a list"),
    ("params-false", lambda m: {"parameters": False, "inputs": [_image_tensor()]}, "got a boolean"),
    (
        "direct-params-0",
        lambda m: {"parameters": 0, "inputs": {"image": _direct_image(m)}},
        "'parameters' must",
    ),
    (
        "tensor-params-0",
        lambda m: {"inputs": [_image_tensor(parameters=0)]},
        r"'image': 'parameters' must be",
    ),
    ("tensor-params-list", lambda m: {"inputs": [_image_tensor(parameters=[])]}, "'parameters' must be"),
    (
        "output-params-str",
        lambda m: {"inputs": [_image_tensor()], "outputs": [{"name": "label", "parameters": ""}]},
        "output 'label': 'parameters' must be an object",
    ),
    # 7. direct-form outputs: unknown names and wrong types refused, as in the OIP form
    (
        "direct-unknown-output",
        lambda m: {"inputs": {"image": _direct_image(m)}, "outputs": ["label", "logits"]},
        "unknown output 'logits' requested; available: 'probabilities', 'label'",
    ),
    (
        "direct-outputs-objects",
        lambda m: {"inputs": {"image": _direct_image(m)}, "outputs": [{"name": "label"}]},
        "'outputs' must be a list of output names",
    ),
    (
        "direct-outputs-str",
        lambda m: {"inputs": {"image": _direct_image(m)}, "outputs": "label"},
        "got a string",
    ),
    (
        "direct-outputs-0",
        lambda m: {"inputs": {"image": _direct_image(m)}, "outputs": 0},
        "'outputs' must be",
    ),
    (
        "direct-outputs-empty-name",
        lambda m: {"inputs": {"image": _direct_image(m)}, "outputs": [""]},
        "'outputs'",
    ),
    # 8. giant user-supplied text: clipped in the reason
    ("giant-input-name", lambda m: {"inputs": {"x" * 10_000_000: [[0.5]]}}, r"unknown input 'x{64}'\.\.\.;"),
    (
        "giant-oip-name",
        lambda m: {"inputs": [_image_tensor(name="y" * 10_000_000, datatype="FP33")]},
        r"input 'y{64}'\.\.\.",
    ),
    (
        "giant-output-name",
        lambda m: {"inputs": [_image_tensor()], "outputs": [{"name": "z" * 10_000_000}]},
        r"unknown output 'z{64}'\.\.\. requested",
    ),
    ("giant-datatype", lambda m: {"inputs": [_image_tensor(datatype="F" * 10_000_000)]}, r"'F{64}'\.\.\."),
    ("giant-unicode-name", lambda m: {"inputs": {"\U0001f600" * 1_000_000: [[0.5]]}}, "unknown input"),
]


@pytest.mark.parametrize(("make", "match"), [d[1:] for d in DEFECTS], ids=[d[0] for d in DEFECTS])
def test_fuzz_defects_are_bounded_400s(
    plane: DataPlane, tflite_models: Models, make: Any, match: str
) -> None:
    _assert_refused(plane, make(tflite_models), match)


def test_direct_outputs_select_and_order(plane: DataPlane, tflite_models: Models) -> None:
    image = _direct_image(tflite_models)
    every = plane.infer({"inputs": {"image": image}})
    chosen = plane.infer({"inputs": {"image": image}, "outputs": ["label", "probabilities", "label"]})
    assert list(chosen["outputs"]) == ["label", "probabilities"]
    assert chosen["outputs"] == every["outputs"]
    assert plane.infer({"inputs": {"image": image}, "outputs": []}) == every
    assert list(plane.infer({"inputs": {"image": image}, "outputs": ["label"]})["outputs"]) == ["label"]


def test_bools_are_data_for_a_bool_input_and_null_parameters_are_absent(predictor: Predictor) -> None:
    flags = IOSignature(inputs=(TensorSpec("flags", "bool", (None, 3)),))
    request = decode(
        {
            "parameters": None,
            "inputs": [{"name": "flags", "shape": [1, 3], "datatype": "BOOL", "data": [True, False, True]}],
        },
        flags,
    )
    assert request.inputs["flags"].dtype == np.bool_ and request.inputs["flags"].tolist() == [
        [True, False, True]
    ]
    with pytest.raises(BadRequestError, match="mixes booleans"):
        decode(
            {"inputs": [{"name": "flags", "shape": [1, 3], "datatype": "BOOL", "data": [True, 0, 1]}]}, flags
        )


PARSE_REFUSALS: list[tuple[str, str | bytes, str]] = [
    (
        "giant-int",
        '{"inputs": {"image": [' + "7" * 5000 + "]}}",
        "integer literal is longer than 4300 digits",
    ),
    ("deep", '{"inputs": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ("nan", '{"inputs": {"image": [NaN]}}', "NaN is not a number"),
    ("infinity", '{"inputs": {"image": [-Infinity]}}', "-Infinity is not a number"),
    ("bad-utf8", b'{"inputs": {"image": [\xff]}}', r"not UTF-8 text \(bad byte at offset 22\)"),
    ("truncated", '{"inputs": {"image": [[', "body is not valid JSON: Expecting value at line 1 column 24"),
    ("control-char", '{"inputs": {"ima\x01ge": [1]}}', "Invalid control character"),
    ("empty", b"", "empty request body"),
    ("blank", " \n ", "empty request body"),
]


@pytest.mark.parametrize(
    ("body", "match"), [p[1:] for p in PARSE_REFUSALS], ids=[p[0] for p in PARSE_REFUSALS]
)
def test_parse_json_refusals_are_one_bounded_line(body: str | bytes, match: str) -> None:
    with pytest.raises(BadRequestError, match=match) as info:
        parse_json(body)
    assert "\n" not in info.value.message and len(info.value.message) <= 200


def test_parse_json_accepts_text_bytes_and_views() -> None:
    body = '{"inputs": {"image": [1, 2.5, "\u00e9"]}}'
    expected = {"inputs": {"image": [1, 2.5, "\u00e9"]}}
    assert parse_json(body) == parse_json(body.encode()) == parse_json(memoryview(body.encode())) == expected
    assert parse_json(bytearray(b"[1e400]")) == [float("inf")]  # a finite-looking literal: coerce refuses it


def test_error_messages_are_bounded_centrally() -> None:
    assert len(BadRequestError("x" * 10_000_000).message) == 512
    assert BadRequestError("a\n  b").message == "a b"
    emoji = BadRequestError("\U0001f600" * 1000)
    assert len(json.dumps(emoji.to_dict())) <= 1100 and emoji.message.endswith("...")
    assert str(emoji) == emoji.message
