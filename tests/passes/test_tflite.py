"""tflite-convert on real models, run in LiteRT's interpreter, judged by the fidelity gate."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgepack.config import Thresholds, parse_project_file
from edgepack.errors import ConfigError, DataError, PassError, UnsupportedOpError
from edgepack.fidelity import FidelityReport, run_fidelity
from edgepack.model.base import Batch, ModelArtifact, ModelSource
from edgepack.model.loader import load_model
from edgepack.passes import PassContext, get_pass
from edgepack.passes.tflite import TFLiteConvert, TFLiteConvertConfig

TARGET = "lambda-x86_64"
Calibration = Callable[[], Iterator[Batch]]


def convert(
    model: ModelArtifact,
    config: dict[str, Any],
    work_dir: Path,
    calibration: Calibration | None = None,
) -> ModelArtifact:
    p = get_pass("tflite-convert")
    work_dir.mkdir(parents=True, exist_ok=True)
    ctx = PassContext(work_dir=work_dir, target=TARGET, calibration=calibration)
    return p.run(model, p.parse_config(config, "test"), ctx)


def interpreter(path: Path) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path))


def run_tflite(model: ModelArtifact, batch: Batch) -> Batch:
    """Run a converted model with LiteRT's signature runner, in public names and float32.

    Quantizes float input for int8 tensors and dequantizes int8 output with the tensors'
    own parameters: what the runtime's Predictor does, written out independently here.
    """
    runner = interpreter(model.path).get_signature_runner("serving_default")
    in_details = runner.get_input_details()
    feeds = {}
    for spec, native in zip(model.signature.inputs, model.native_inputs, strict=True):
        x = np.asarray(batch[spec.name], dtype=np.float32)
        detail = in_details[native]
        if np.dtype(detail["dtype"]) == np.int8:
            scale, zero = detail["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        feeds[native] = x
    raw = runner(**feeds)
    out_details = runner.get_output_details()
    result = {}
    for spec, native in zip(model.signature.outputs, model.native_outputs, strict=True):
        y = raw[native]
        if np.dtype(out_details[native]["dtype"]) == np.int8:
            scale, zero = out_details[native]["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        result[spec.name] = y
    return result


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def calibration(calibration_npz: Path) -> Calibration:
    images = np.load(calibration_npz)["image"]
    # Uneven batches, as a generator would give them: the pass splits them per sample.
    return lambda: iter([{"image": images[:50]}, {"image": images[50:130]}, {"image": images[130:]}])


@pytest.fixture(scope="session")
def sample_thresholds(sample_dir: Path) -> Thresholds:
    """The gate the sample project ships with (top-1 >= 0.98, accuracy drop <= 0.01)."""
    config_path = sample_dir / "edgepack.yaml"
    project = parse_project_file(config_path.read_text(encoding="utf-8"), str(config_path))
    assert project.validation is not None
    return project.validation.thresholds


@pytest.fixture(scope="session")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tflite")


MODES: list[dict[str, Any]] = [
    {"mode": "fp32"},
    {"mode": "fp16"},
    {"mode": "dynamic"},
    {"mode": "int8"},
    {"mode": "int8", "io_dtype": "int8"},
    {"mode": "int16x8"},
]


def mode_id(config: dict[str, Any]) -> str:
    return "-".join(str(v) for v in config.values())


@pytest.fixture(scope="session")
def converted(digits: ModelSource, calibration: Calibration, work: Path) -> dict[str, ModelArtifact]:
    """The sample model in every mode, converted once per session."""
    return {
        mode_id(config): convert(digits.artifact, config, work / mode_id(config), calibration)
        for config in MODES
    }


def gate(
    source: ModelSource, model: ModelArtifact, validation: tuple[Batch, np.ndarray], thresholds: Thresholds
) -> FidelityReport:
    inputs, labels = validation
    return run_fidelity(source.predict, lambda b: run_tflite(model, b), inputs, labels, thresholds)


# -- config ---------------------------------------------------------------------------


def test_registered_with_its_formats() -> None:
    p = get_pass("tflite-convert")
    assert isinstance(p, TFLiteConvert)
    assert p.accepts == {"keras", "savedmodel"}
    assert p.produces == "tflite"


def test_config_defaults_and_calibration_needs() -> None:
    p = TFLiteConvert()
    config = p.parse_config({}, "t")
    assert isinstance(config, TFLiteConvertConfig)
    assert (config.mode, config.io_dtype, config.calibration_samples) == ("int8", "float32", None)
    modes = ("fp32", "fp16", "dynamic", "int8", "int16x8")
    needs = {m: p.requires_calibration(p.parse_config({"mode": m}, "t")) for m in modes}
    assert needs == {"fp32": False, "fp16": False, "dynamic": False, "int8": True, "int16x8": True}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"mode": "int4"}, "mode"),
        ({"mode": "fp16", "io_dtype": "int8"}, ""),
        ({"calibration_samples": 0}, "calibration_samples"),
        ({"representative": 10}, "representative"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        TFLiteConvert().parse_config(raw, "targets/x.yaml: passes.0")
    assert info.value.where == ("targets/x.yaml: passes.0" + (f".{field}" if field else ""))
    if not field:
        assert "io_dtype int8 needs mode int8" in info.value.hint()


def test_shipped_profiles_parse() -> None:
    from edgepack.resources import targets_dir
    from edgepack.targets import load_target

    p = TFLiteConvert()
    seen = 0
    for path in sorted(targets_dir().glob("*.yaml")):
        for variant in load_target(path.stem).variants:
            for spec in variant.passes:
                if spec.name == "tflite-convert":
                    p.parse_config(spec.config, path.name)
                    seen += 1
    assert seen >= 3


# -- every mode -------------------------------------------------------------------------


@pytest.mark.parametrize("config", MODES, ids=mode_id)
def test_each_mode_converts_and_runs_in_litert(
    config: dict[str, Any],
    converted: dict[str, ModelArtifact],
    digits: ModelSource,
    validation: tuple[Batch, np.ndarray],
) -> None:
    model = converted[mode_id(config)]
    assert model.format == "tflite"
    assert model.path.name == "model.tflite" and model.path.is_file()
    assert model.precision == config["mode"]
    # The public signature is the source's, unchanged: same names, float32 dtypes.
    assert model.signature == digits.artifact.signature
    assert model.native_inputs == ("image",)
    assert model.native_outputs == ("probabilities",)
    assert model.details["mode"] == config["mode"]
    assert model.details["io_dtype"] == config.get("io_dtype", "float32")
    assert model.details["converter"]["tensorflow"].startswith("2.")
    json.dumps(model.details)  # recorded in the manifest as is

    x = validation[0]["image"][:32]
    got = run_tflite(model, {"image": x})["probabilities"]
    expected = digits.predict({"image": x})["probabilities"]
    assert got.shape == (32, 10)  # a dynamic batch axis survives conversion
    tolerance = {"fp32": 1e-5, "fp16": 5e-3, "dynamic": 0.05, "int8": 0.08, "int16x8": 0.05}[config["mode"]]
    np.testing.assert_allclose(got, expected, atol=tolerance)


def test_int8_stores_int8_weights_and_int8_io(converted: dict[str, ModelArtifact]) -> None:
    model = converted["int8-int8"]
    interp = interpreter(model.path)
    (inp,) = interp.get_input_details()
    (out,) = interp.get_output_details()
    for tensor in (inp, out):
        assert np.dtype(tensor["dtype"]) == np.int8
        scale, _ = tensor["quantization"]
        assert scale > 0
    # Every conv / dense weight is int8 (biases are int32).
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    heavy = [op for op in interp._get_ops_details() if op["op_name"] in {"CONV_2D", "FULLY_CONNECTED"}]
    assert len(heavy) == 4
    assert {np.dtype(tensors[op["inputs"][1]]["dtype"]) for op in heavy} == {np.dtype(np.int8)}
    # The quantization of the IO is recorded for the manifest and the runtime.
    (rec_in,) = model.details["inputs"]
    (rec_out,) = model.details["outputs"]
    assert rec_in["dtype"] == rec_out["dtype"] == "int8"
    assert rec_in["quantization"] == {
        "scale": pytest.approx(inp["quantization"][0]),
        "zero_point": inp["quantization"][1],
    }
    assert rec_out["quantization"]["scale"] == pytest.approx(out["quantization"][0])
    assert model.details["float_ops"] == []
    assert set(model.details["weights"]) <= {"int8", "int32"}
    assert model.details["calibration_samples"] == 200
    assert model.details["calibration_ranges"]["image"] == [0.0, 1.0]


def test_int8_with_float_io_is_integer_inside(converted: dict[str, ModelArtifact]) -> None:
    model = converted["int8"]
    interp = interpreter(model.path)
    assert np.dtype(interp.get_input_details()[0]["dtype"]) == np.float32
    assert np.dtype(interp.get_output_details()[0]["dtype"]) == np.float32
    assert model.details["inputs"][0]["quantization"] is None
    assert model.details["float_ops"] == []  # only QUANTIZE/DEQUANTIZE at the edges touch float


def test_sizes_follow_the_precision(converted: dict[str, ModelArtifact]) -> None:
    size = {k: m.path.stat().st_size for k, m in converted.items()}
    assert all(m.details["size_bytes"] == size[k] for k, m in converted.items())
    assert 0.45 < size["fp16"] / size["fp32"] < 0.6
    for key in ("int8", "int8-int8", "dynamic"):
        assert 0.2 < size[key] / size["fp32"] < 0.35, key


def test_int8_passes_the_sample_gate(
    converted: dict[str, ModelArtifact],
    digits: ModelSource,
    validation: tuple[Batch, np.ndarray],
    sample_thresholds: Thresholds,
) -> None:
    for key in ("int8", "int8-int8"):
        report = gate(digits, converted[key], validation, sample_thresholds)
        assert report.passed, (key, report.failures)
        assert report.samples == 500
        assert report.metrics.top1_agreement is not None and report.metrics.top1_agreement >= 0.98
        assert report.metrics.reference_accuracy is not None and report.metrics.reference_accuracy > 0.95
        assert report.metrics.accuracy_drop is not None and report.metrics.accuracy_drop <= 0.01


def test_calibration_samples_caps_the_data(
    digits: ModelSource, calibration: Calibration, tmp_path: Path
) -> None:
    model = convert(digits.artifact, {"mode": "int8", "calibration_samples": 16}, tmp_path, calibration)
    assert model.details["calibration_samples"] == 16


# -- calibration faults -----------------------------------------------------------------


def test_all_zero_calibration_builds_a_model_the_gate_rejects(
    digits: ModelSource,
    calibration_npz: Path,
    validation: tuple[Batch, np.ndarray],
    sample_thresholds: Thresholds,
    tmp_path: Path,
) -> None:
    """Fault: calibration images replaced by zeros. The converter takes them without a
    word and every activation range collapses; only the gate can tell."""
    zeros = np.zeros_like(np.load(calibration_npz)["image"])
    model = convert(digits.artifact, {"mode": "int8"}, tmp_path, lambda: iter([{"image": zeros}]))
    assert model.details["calibration_ranges"]["image"] == [0.0, 0.0]
    report = gate(digits, model, validation, sample_thresholds)
    assert not report.passed
    assert report.metrics.top1_agreement is not None and report.metrics.top1_agreement < 0.5
    assert any(f.startswith("top1_agreement ") and "< min 0.980" in f for f in report.failures)
    assert any(f.startswith("accuracy_drop ") and "> max 0.010" in f for f in report.failures)


@pytest.mark.parametrize("mode", ["int8", "int16x8"])
def test_calibrated_mode_without_data_names_the_target(
    digits: ModelSource, mode: str, tmp_path: Path
) -> None:
    with pytest.raises(DataError) as info:
        convert(digits.artifact, {"mode": mode}, tmp_path, None)
    assert info.value.hint() == (
        f"target {TARGET}: {mode} needs calibration data (calibration: in edgepack.yaml)"
    )
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("batches", "message"),
    [
        (
            [{"pixels": np.zeros((4, 8, 8, 1), np.float32)}],
            "calibration batch has no input 'image' (has: pixels)",
        ),
        (
            [{"image": np.zeros((4, 8, 8), np.float32)}],
            "calibration input 'image' has shape (4, 8, 8), the model takes (None, 8, 8, 1)",
        ),
        ([], "the calibration data has no samples"),
    ],
    ids=["wrong-name", "wrong-shape", "empty"],
)
def test_bad_calibration_data_is_a_data_error(
    digits: ModelSource, batches: list[Batch], message: str, tmp_path: Path
) -> None:
    with pytest.raises(DataError) as info:
        convert(digits.artifact, {"mode": "int8"}, tmp_path, lambda: iter(batches))
    assert info.value.hint() == f"target {TARGET}: {message}"


# -- names ------------------------------------------------------------------------------


def multi_io_batch(n: int, seed: int = 3) -> Batch:
    rng = np.random.default_rng(seed)
    return {
        "pixels": rng.random((n, 4, 4, 1), dtype=np.float32),
        "meta": rng.random((n, 3), dtype=np.float32),
    }


@pytest.mark.parametrize("config", [{"mode": "fp32"}, {"mode": "int8", "io_dtype": "int8"}], ids=mode_id)
def test_multi_io_keeps_names_and_order(
    multi_io_keras_path: Path, config: dict[str, Any], tmp_path: Path
) -> None:
    source = load_model(multi_io_keras_path)
    assert source.artifact.signature.input_names == ("pixels", "meta")
    assert source.artifact.signature.output_names == ("class_probs", "score")
    model = convert(source.artifact, config, tmp_path, lambda: iter([multi_io_batch(64, seed=1)]))

    assert model.signature == source.artifact.signature
    assert model.native_inputs == ("pixels", "meta")
    assert model.native_outputs == ("class_probs", "score")
    # The .tflite itself carries those names (LiteRT lists them sorted, not in model order).
    signature = interpreter(model.path).get_signature_list()["serving_default"]
    assert sorted(signature["inputs"]) == ["meta", "pixels"]
    assert sorted(signature["outputs"]) == ["class_probs", "score"]
    assert [t["name"] for t in model.details["inputs"]] == ["pixels", "meta"]
    assert [t["name"] for t in model.details["outputs"]] == ["class_probs", "score"]

    batch = multi_io_batch(16)
    expected = source.predict(batch)
    got = run_tflite(model, batch)
    assert list(got) == ["class_probs", "score"]
    atol = 1e-5 if config["mode"] == "fp32" else 0.05
    for name in expected:
        assert got[name].shape == expected[name].shape
        np.testing.assert_allclose(got[name], expected[name], atol=atol)


def test_renamed_public_names_align_through_native_names(multi_io_keras_path: Path, tmp_path: Path) -> None:
    """The config renamed the model's tensors; calibration arrives under the public names."""
    source = load_model(multi_io_keras_path, input_names=["picture", "info"], output_names=["probs", "value"])
    assert source.artifact.native_inputs == ("pixels", "meta")
    batch = multi_io_batch(64, seed=1)
    public = {"picture": batch["pixels"], "info": batch["meta"]}
    model = convert(source.artifact, {"mode": "int8"}, tmp_path, lambda: iter([public]))
    assert model.signature.input_names == ("picture", "info")
    assert model.signature.output_names == ("probs", "value")
    assert model.native_inputs == ("pixels", "meta")
    assert model.native_outputs == ("class_probs", "score")
    assert set(model.details["calibration_ranges"]) == {"picture", "info"}
    got = run_tflite(model, public)
    expected = source.predict(public)
    for name in ("probs", "value"):
        np.testing.assert_allclose(got[name], expected[name], atol=0.05)


def test_runtime_predictor_reads_the_artifact(multi_io_keras_path: Path, tmp_path: Path) -> None:
    """The contract with the runtime: native names and int8 IO as the Predictor expects them."""
    from edgepack.runtime.backends import load_backend
    from edgepack.runtime.predictor import Predictor

    source = load_model(multi_io_keras_path)
    model = convert(
        source.artifact, {"mode": "int8", "io_dtype": "int8"}, tmp_path, lambda: iter([multi_io_batch(64, 1)])
    )
    predictor = Predictor(
        load_backend("litert", model.path, {}),
        model.signature,
        native_inputs=model.native_inputs,
        native_outputs=model.native_outputs,
    )
    batch = multi_io_batch(8)
    got = predictor.predict(batch)
    expected = source.predict(batch)
    assert set(got) == {"class_probs", "score"}
    for name in expected:
        assert got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], expected[name], atol=0.05)


@pytest.fixture(scope="session")
def digits_savedmodel(
    digits: ModelSource, keras_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Keras' own export: outputs are called ``output_0`` inside the SavedModel."""
    from edgepack.model.tf_env import import_keras

    keras = import_keras()
    path = tmp_path_factory.mktemp("digits-sm") / "saved"
    keras.saving.load_model(keras_model_path, compile=False).export(str(path), verbose=False)
    return path


def test_savedmodel_converts_with_its_signature_names(
    digits_savedmodel: Path, digits: ModelSource, calibration: Calibration, tmp_path: Path
) -> None:
    source = load_model(digits_savedmodel, output_names=["probabilities"])
    assert source.artifact.format == "savedmodel"
    model = convert(source.artifact, {"mode": "int8"}, tmp_path, calibration)
    assert model.signature.output_names == ("probabilities",)
    assert model.native_inputs == ("image",)
    assert model.native_outputs == ("output_0",)
    x = np.load(Path(digits.artifact.path).parent.parent / "data" / "validation.npz")["image"][:16]
    np.testing.assert_allclose(
        run_tflite(model, {"image": x})["probabilities"],
        digits.predict({"image": x})["probabilities"],
        atol=0.08,
    )


def test_savedmodel_signature_under_another_key_is_served_as_default(tmp_path: Path) -> None:
    from edgepack.model.tf_env import import_tensorflow

    tf = import_tensorflow()

    class Scale(tf.Module):  # type: ignore[name-defined]
        @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.float32, name="x")])
        def predict(self, x: Any) -> dict[str, Any]:
            return {"y": x * 2.0}

    module = Scale()
    path = tmp_path / "saved"
    tf.saved_model.save(module, str(path), signatures={"predict": module.predict})
    source = load_model(path)
    model = convert(source.artifact, {"mode": "fp32"}, tmp_path / "out")
    assert "serving_default" in interpreter(model.path).get_signature_list()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(run_tflite(model, {"x": x})["y"], x * 2)


# -- what the converter refuses ---------------------------------------------------------


@pytest.fixture(scope="session")
def matrix_inverse_savedmodel(tmp_path_factory: pytest.TempPathFactory) -> ModelSource:
    """A SavedModel using MatrixInverse, which has no TFLite builtin kernel."""
    from edgepack.model.tf_env import import_tensorflow

    tf = import_tensorflow()

    class Inverse(tf.Module):  # type: ignore[name-defined]
        @tf.function(input_signature=[tf.TensorSpec((None, 3, 3), tf.float32, name="matrix")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"inverse": tf.linalg.inv(x) * 2.0}

    module = Inverse()
    path = tmp_path_factory.mktemp("inverse") / "saved"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return load_model(path)


@pytest.fixture(scope="session")
def matrix_inverse_keras(tmp_path_factory: pytest.TempPathFactory) -> ModelSource:
    """The same op inside a custom Keras 3 layer."""
    from edgepack.model.tf_env import import_keras, import_tensorflow

    tf = import_tensorflow()
    keras = import_keras()

    @keras.saving.register_keras_serializable(package="edgepack_tests")
    class Inverse(keras.layers.Layer):  # type: ignore[name-defined]
        def call(self, x: Any) -> Any:
            return tf.linalg.inv(x)

    matrix = keras.Input(shape=(3, 3), name="matrix")
    path = tmp_path_factory.mktemp("inverse-keras") / "inverse.keras"
    keras.Model(matrix, Inverse(name="inverse")(matrix)).save(path)
    return load_model(path)


def spd_matrices(n: int) -> np.ndarray:
    a = np.random.default_rng(0).random((n, 3, 3), dtype=np.float32)
    return a @ a.transpose(0, 2, 1) + 3 * np.eye(3, dtype=np.float32)


@pytest.mark.parametrize("mode", ["fp32", "int8"])
def test_unsupported_op_is_named(
    matrix_inverse_savedmodel: ModelSource, mode: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    calibration = lambda: iter([{"matrix": spd_matrices(8)}])  # noqa: E731
    with pytest.raises(UnsupportedOpError) as info:
        convert(matrix_inverse_savedmodel.artifact, {"mode": mode}, tmp_path, calibration)
    error = info.value
    assert error.op == "tf.MatrixInverse"
    assert error.target == TARGET
    hint = error.hint()
    assert "\n" not in hint
    assert hint.startswith(f"target {TARGET}: operation tf.MatrixInverse is not supported by the converter")
    assert len(hint) < 200
    assert error.exit_code == 2
    # The converter's pages of MLIR stay in the exception's cause, not on the terminal.
    assert "neither a custom op nor a flex op" in str(error.__cause__)
    assert "neither a custom op" not in capfd.readouterr().err


def test_unsupported_op_in_a_keras_layer_is_named(matrix_inverse_keras: ModelSource, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOpError) as info:
        convert(matrix_inverse_keras.artifact, {"mode": "fp16"}, tmp_path)
    assert info.value.op == "tf.MatrixInverse"


def test_several_unsupported_ops_are_all_named(tmp_path: Path) -> None:
    from edgepack.model.tf_env import import_tensorflow

    tf = import_tensorflow()

    class Two(tf.Module):  # type: ignore[name-defined]
        @tf.function(input_signature=[tf.TensorSpec((None, 3, 3), tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"y": tf.math.erf(x) + tf.linalg.inv(x)}

    module = Two()
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures={"serving_default": module.serve})
    with pytest.raises(UnsupportedOpError) as info:
        convert(load_model(tmp_path / "saved").artifact, {"mode": "fp32"}, tmp_path / "out")
    assert {info.value.op} < {"tf.Erf", "tf.MatrixInverse"}
    assert "tf.Erf" in info.value.hint() and "tf.MatrixInverse" in info.value.hint()


@pytest.fixture(scope="session")
def sine_savedmodel(tmp_path_factory: pytest.TempPathFactory) -> ModelSource:
    """SIN has a float kernel but no int8 one: full-integer conversion leaves it in float."""
    from edgepack.model.tf_env import import_tensorflow

    tf = import_tensorflow()

    class Sine(tf.Module):  # type: ignore[name-defined]
        @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"y": tf.math.sin(x * 3.0 + 1.0)}

    module = Sine()
    path = tmp_path_factory.mktemp("sine") / "saved"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return load_model(path)


def test_float_fallback_is_recorded_or_refused(sine_savedmodel: ModelSource, tmp_path: Path) -> None:
    data = np.random.default_rng(0).random((32, 4), dtype=np.float32)
    calibration = lambda: iter([{"x": data}])  # noqa: E731
    model = convert(sine_savedmodel.artifact, {"mode": "int8"}, tmp_path / "fallback", calibration)
    assert model.details["float_ops"] == ["SIN"]
    np.testing.assert_allclose(run_tflite(model, {"x": data})["y"], np.sin(data * 3 + 1), atol=0.05)

    with pytest.raises(UnsupportedOpError) as info:
        convert(
            sine_savedmodel.artifact,
            {"mode": "int8", "allow_float_ops": False},
            tmp_path / "strict",
            calibration,
        )
    assert info.value.op == "SIN"
    assert "no int8 kernel" in info.value.hint()


def test_other_converter_failures_are_one_line_pass_errors(tmp_path: Path) -> None:
    """An FFT of length 3 converts, but calibration runs it and TFLite's RFFT2D wants powers of two."""
    from edgepack.model.tf_env import import_tensorflow

    tf = import_tensorflow()

    class Spectrum(tf.Module):  # type: ignore[name-defined]
        @tf.function(input_signature=[tf.TensorSpec((None, 3, 3), tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"y": tf.math.real(tf.signal.fft(tf.cast(x, tf.complex64)))}

    module = Spectrum()
    tf.saved_model.save(module, str(tmp_path / "saved"), signatures={"serving_default": module.serve})
    source = load_model(tmp_path / "saved")
    data = np.random.default_rng(0).random((4, 3, 3), dtype=np.float32)
    with pytest.raises(PassError) as info:
        convert(source.artifact, {"mode": "int8"}, tmp_path / "out", lambda: iter([{"x": data}]))
    hint = info.value.hint()
    assert hint.startswith(f"target {TARGET}: tflite-convert int8 failed: ")
    assert "RFFT2D" in hint
    assert "\n" not in hint


def test_other_formats_are_refused(digits: ModelSource, tmp_path: Path) -> None:
    from dataclasses import replace

    onnx_like = replace(digits.artifact, format="onnx", path=tmp_path / "model.onnx")
    with pytest.raises(PassError, match="takes keras or savedmodel models, not onnx"):
        convert(onnx_like, {"mode": "fp32"}, tmp_path)


def test_per_tensor_quantization_on_request(
    converted: dict[str, ModelArtifact], digits: ModelSource, calibration: Calibration, tmp_path: Path
) -> None:
    def conv_weight_scales(model: ModelArtifact) -> set[int]:
        interp = interpreter(model.path)
        tensors = {t["index"]: t for t in interp.get_tensor_details()}
        convs = [op for op in interp._get_ops_details() if op["op_name"] == "CONV_2D"]
        return {len(tensors[op["inputs"][1]]["quantization_parameters"]["scales"]) for op in convs}

    assert conv_weight_scales(converted["int8"]) == {16, 32}  # one scale per output channel
    per_tensor = convert(digits.artifact, {"mode": "int8", "per_channel": False}, tmp_path, calibration)
    assert conv_weight_scales(per_tensor) == {1}
    assert per_tensor.details["per_channel"] is False


def test_custom_ops_kept_on_request(matrix_inverse_savedmodel: ModelSource, tmp_path: Path) -> None:
    model = convert(matrix_inverse_savedmodel.artifact, {"mode": "fp32", "allow_custom_ops": True}, tmp_path)
    ops = {op["op_name"] for op in interpreter(model.path)._get_ops_details()}
    assert "MatrixInverse" in ops  # a custom op: only a runtime that registers it can run this
