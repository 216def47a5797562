"""Calibration/validation data: files, generators, and every way data can fail to fit."""

from __future__ import annotations

import hashlib
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgepack.config import CalibrationSpec, DataSpec
from edgepack.data import Dataset, load_dataset
from edgepack.errors import EXIT_BAD_INPUT, DataError
from edgepack.runtime.signature import IOSignature, TensorSpec

WHERE = "edgepack.yaml: calibration"

DIGITS = IOSignature(
    inputs=(TensorSpec("image", "float32", (None, 8, 8, 1)),),
    outputs=(TensorSpec("probabilities", "float32", (None, 10)),),
)
MULTI = IOSignature(
    inputs=(TensorSpec("pixels", "float32", (None, 4, 4, 1)), TensorSpec("meta", "float32", (None, 3))),
    outputs=(TensorSpec("class_probs", "float32", (None, 5)), TensorSpec("score", "float32", (None, 1))),
)


def load(tmp_path: Path, signature: IOSignature = DIGITS, **spec: object) -> Dataset:
    return load_dataset(DataSpec.model_validate(spec), tmp_path, signature, WHERE)


def data_error(tmp_path: Path, signature: IOSignature = DIGITS, **spec: object) -> DataError:
    with pytest.raises(DataError) as info:
        load(tmp_path, signature, **spec)
    err = info.value
    assert err.exit_code == EXIT_BAD_INPUT
    assert "\n" not in err.hint()
    return err


def save_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 8, 8, 1), dtype=np.float32)


def multi(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "pixels": rng.random((n, 4, 4, 1), dtype=np.float32),
        "meta": rng.random((n, 3), dtype=np.float32),
    }


# -- the sample's files ---------------------------------------------------------------


def test_sample_calibration_npz(sample_dir: Path, calibration_npz: Path) -> None:
    ds = load_dataset(DataSpec(path="data/calibration.npz"), sample_dir, DIGITS, WHERE)
    assert isinstance(ds, Dataset)
    assert ds.size == 200
    assert list(ds.inputs) == ["image"]
    assert ds.inputs["image"].shape == (200, 8, 8, 1)
    assert ds.inputs["image"].dtype == np.float32
    assert ds.labels is None
    assert ds.digest == hashlib.sha256(calibration_npz.read_bytes()).hexdigest()
    assert ds.source == str(sample_dir / "data" / "calibration.npz")


def test_sample_validation_with_labels_samples_and_batches(sample_dir: Path, validation_npz: Path) -> None:
    full = load_dataset(DataSpec(path="data/validation.npz", labels="labels"), sample_dir, DIGITS, WHERE)
    assert full.size == 500
    assert full.labels is not None and full.labels.shape == (500,)
    spec = DataSpec(path=str(validation_npz), labels="labels", samples=130)  # absolute path works too
    ds = load_dataset(spec, Path("/nonexistent-root"), DIGITS, WHERE)
    assert ds.size == 130
    assert ds.labels is not None and len(ds.labels) == 130
    assert ds.digest == full.digest == hashlib.sha256(validation_npz.read_bytes()).hexdigest()
    batches = list(ds.batches(64))
    assert [len(b["image"]) for b in batches] == [64, 64, 2]
    np.testing.assert_array_equal(np.concatenate([b["image"] for b in batches]), full.inputs["image"][:130])
    assert [len(b) for b in ds.label_batches(64)] == [64, 64, 2]


# -- layouts --------------------------------------------------------------------------


def test_one_input_model_takes_the_only_non_label_array(tmp_path: Path) -> None:
    save_npz(tmp_path / "d.npz", x=images(5), y=np.arange(5))
    ds = load(tmp_path, path="d.npz", labels="y")
    assert list(ds.inputs) == ["image"]
    np.testing.assert_array_equal(ds.labels, np.arange(5))


def test_multi_input_npz_keys_are_input_names_extra_keys_ignored(tmp_path: Path) -> None:
    arrays = multi(4)
    save_npz(tmp_path / "m.npz", meta=arrays["meta"], ids=np.arange(4), pixels=arrays["pixels"])
    ds = load(tmp_path, MULTI, path="m.npz")
    assert list(ds.inputs) == ["pixels", "meta"]
    assert ds.size == 4


def test_npy_for_a_one_input_model(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", images(3).astype(np.float64))
    ds = load(tmp_path, path="x.npy")
    assert ds.inputs["image"].dtype == np.float32
    assert ds.digest == hashlib.sha256((tmp_path / "x.npy").read_bytes()).hexdigest()


def test_integer_data_is_cast_to_the_float_input(tmp_path: Path) -> None:
    save_npz(tmp_path / "d.npz", image=np.ones((2, 8, 8, 1), dtype=np.uint8))
    ds = load(tmp_path, path="d.npz")
    assert ds.inputs["image"].dtype == np.float32


def test_dynamic_axes_are_free_and_a_fixed_batch_axis_too(tmp_path: Path) -> None:
    sig = IOSignature(inputs=(TensorSpec("tokens", "int32", (1, None)),))
    save_npz(tmp_path / "t.npz", tokens=np.arange(12, dtype=np.int64).reshape(3, 4))
    ds = load(tmp_path, sig, path="t.npz")
    assert ds.inputs["tokens"].dtype == np.int32
    assert ds.size == 3


def test_where_may_name_the_field_already(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(DataSpec(path="none.npz"), tmp_path, DIGITS, f"{WHERE}.path")
    assert info.value.where == f"{WHERE}.path"


# -- file errors ----------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    err = data_error(tmp_path, path="data/missing.npz")
    assert err.where == f"{WHERE}.path"
    assert "data file not found" in err.message
    assert str(tmp_path / "data" / "missing.npz") in err.message


def test_not_an_npz(tmp_path: Path) -> None:
    (tmp_path / "bad.npz").write_bytes(b"this is not a zip file at all")
    err = data_error(tmp_path, path="bad.npz")
    assert "bad.npz: not an npz file" in err.message
    assert err.where == f"{WHERE}.path"


def test_truncated_npz(tmp_path: Path) -> None:
    data = save_npz(tmp_path / "full.npz", image=images(50)).read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    err = data_error(tmp_path, path="cut.npz")
    assert "cut.npz" in err.message


def test_not_an_npy(tmp_path: Path) -> None:
    (tmp_path / "bad.npy").write_bytes(b"\x00" * 100)
    assert "bad.npy: not a valid .npy file" in data_error(tmp_path, path="bad.npy").message


def test_wrong_extension(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("1,2,3\n")
    assert "expected an .npz or .npy file" in data_error(tmp_path, path="d.csv").message


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    (tmp_path / "d.npz").mkdir()
    assert "not a file" in data_error(tmp_path, path="d.npz").message


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    save_npz(tmp_path / "o.npz", image=np.array([{"a": 1}, None], dtype=object))
    assert "pickled" in data_error(tmp_path, path="o.npz").message


def test_npy_for_a_multi_input_model(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", images(3))
    err = data_error(tmp_path, MULTI, path="x.npy")
    assert "model takes 2 inputs (pixels, meta)" in err.message


def test_npy_with_labels(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", images(3))
    assert "holds no labels" in data_error(tmp_path, path="x.npy", labels="labels").message


# -- content errors -------------------------------------------------------------------


def test_missing_key(tmp_path: Path) -> None:
    save_npz(tmp_path / "d.npz", x=images(3), z=images(3))  # two candidates: no guessing
    err = data_error(tmp_path, path="d.npz")
    assert "d.npz: missing key 'image' (has: x, z)" in err.message
    assert err.where == f"{WHERE}.path"


def test_missing_key_of_a_multi_input_model(tmp_path: Path) -> None:
    save_npz(tmp_path / "m.npz", pixels=multi(3)["pixels"])
    assert "missing key 'meta'" in data_error(tmp_path, MULTI, path="m.npz").message


def test_missing_labels_key(tmp_path: Path) -> None:
    save_npz(tmp_path / "d.npz", image=images(3))
    err = data_error(tmp_path, path="d.npz", labels="labels")
    assert "missing labels key 'labels'" in err.message
    assert err.where == f"{WHERE}.labels"


@pytest.mark.parametrize(
    ("shape", "shown"),
    [((10, 8, 8), "(10, 8, 8)"), ((10, 8, 8, 3), "(10, 8, 8, 3)"), ((10, 64), "(10, 64)")],
)
def test_shape_mismatch(tmp_path: Path, shape: tuple[int, ...], shown: str) -> None:
    save_npz(tmp_path / "d.npz", image=np.zeros(shape, np.float32))
    err = data_error(tmp_path, path="d.npz")
    assert f"'image' has shape {shown} which does not match (None, 8, 8, 1)" in err.message


def test_labels_count_differs(tmp_path: Path) -> None:
    save_npz(tmp_path / "d.npz", image=images(10), labels=np.arange(9))
    err = data_error(tmp_path, path="d.npz", labels="labels")
    assert "labels count 9 differs from the 10 input samples" in err.message
    assert err.where == f"{WHERE}.labels"


def test_inputs_with_different_sample_counts(tmp_path: Path) -> None:
    arrays = multi(5)
    save_npz(tmp_path / "m.npz", pixels=arrays["pixels"], meta=arrays["meta"][:4])
    assert (
        "different numbers of samples (pixels 5, meta 4)" in data_error(tmp_path, MULTI, path="m.npz").message
    )


@pytest.mark.parametrize(("value", "kind"), [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")])
def test_non_finite_values(tmp_path: Path, value: float, kind: str) -> None:
    x = images(6)
    x[4, 1, 2, 0] = value
    save_npz(tmp_path / "d.npz", image=x)
    err = data_error(tmp_path, path="d.npz")
    assert f"'image' has 1 {kind} values (first in sample 4)" in err.message


def test_values_that_overflow_float32(tmp_path: Path) -> None:
    x = images(2).astype(np.float64)
    x[1, 0, 0, 0] = 1e300
    save_npz(tmp_path / "d.npz", image=x)
    assert "infinite" in data_error(tmp_path, path="d.npz").message


def test_nan_labels(tmp_path: Path) -> None:
    save_npz(tmp_path / "d.npz", image=images(3), labels=np.array([0.0, np.nan, 1.0]))
    assert "labels has 1 NaN values" in data_error(tmp_path, path="d.npz", labels="labels").message


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([["a"] * 4] * 2), "dtype <U1 which cannot be cast to int32"),
        (np.ones((2, 4), np.float32), "dtype float32 which cannot be cast to int32"),
        (np.full((2, 4), 2**40, np.int64), "values that do not fit int32"),
    ],
)
def test_dtype_not_castable(tmp_path: Path, array: np.ndarray, expected: str) -> None:
    sig = IOSignature(inputs=(TensorSpec("tokens", "int32", (None, 4)),))
    save_npz(tmp_path / "t.npz", tokens=array)
    assert expected in data_error(tmp_path, sig, path="t.npz").message


def test_no_samples(tmp_path: Path) -> None:
    save_npz(tmp_path / "d.npz", image=np.zeros((0, 8, 8, 1), np.float32))
    assert "holds no samples" in data_error(tmp_path, path="d.npz").message


# -- generators -----------------------------------------------------------------------


def write_module(root: Path, name: str, body: str) -> None:
    (root / f"{name}.py").write_text(textwrap.dedent(body))


def test_generator_of_dict_batches_with_labels(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        "calib_gen",
        """
        import numpy as np

        def batches():
            rng = np.random.default_rng(3)
            for _ in range(3):
                yield {
                    "pixels": rng.random((4, 4, 4, 1)),
                    "meta": rng.random((4, 3)),
                    "labels": rng.integers(0, 5, size=4),
                }
        """,
    )
    saved_path = list(sys.path)
    ds = load(tmp_path, MULTI, generator="calib_gen:batches", labels="labels")
    assert sys.path == saved_path
    assert "calib_gen" not in sys.modules
    assert ds.size == 12
    assert ds.inputs["pixels"].dtype == np.float32
    assert ds.labels is not None and ds.labels.shape == (12,)
    assert ds.source == "generator calib_gen:batches"
    again = load(tmp_path, MULTI, generator="calib_gen:batches", labels="labels")
    assert again.digest == ds.digest
    assert len(ds.digest) == 64


def test_generator_returning_one_array_and_digest_follows_content(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        "one_array",
        """
        import numpy as np

        def ones():
            return np.ones((5, 8, 8, 1))

        def twos():
            return [np.full((2, 8, 8, 1), 2.0), np.full((3, 8, 8, 1), 2.0)]
        """,
    )
    ones = load(tmp_path, generator="one_array:ones")
    twos = load(tmp_path, generator="one_array:twos")
    assert ones.size == twos.size == 5
    assert ones.digest != twos.digest


def test_samples_stops_an_endless_generator(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        "endless",
        """
        import itertools
        import numpy as np

        def stream():
            for i in itertools.count():
                yield np.full((4, 8, 8, 1), float(i % 7) / 7)
        """,
    )
    ds = load(tmp_path, generator="endless:stream", samples=10)
    assert ds.size == 10


def test_generator_in_a_package_of_the_project(tmp_path: Path) -> None:
    (tmp_path / "proj_pkg").mkdir()
    (tmp_path / "proj_pkg" / "__init__.py").write_text("")
    write_module(
        tmp_path / "proj_pkg", "gen", "import numpy as np\ndef make():\n    return np.zeros((2, 8, 8, 1))\n"
    )
    assert load(tmp_path, generator="proj_pkg.gen:make").size == 2
    assert "proj_pkg" not in sys.modules and "proj_pkg.gen" not in sys.modules


def test_two_projects_with_the_same_module_name_each_get_their_own(tmp_path: Path) -> None:
    for value, project in ((1.0, "a"), (2.0, "b")):
        root = tmp_path / project
        root.mkdir()
        write_module(
            root, "same_name", f"import numpy as np\ndef make():\n    return np.full((1, 8, 8, 1), {value})\n"
        )
    a = load(tmp_path / "a", generator="same_name:make")
    b = load(tmp_path / "b", generator="same_name:make")
    assert a.inputs["image"][0, 0, 0, 0] == 1.0
    assert b.inputs["image"][0, 0, 0, 0] == 2.0


def test_generator_module_that_does_not_import(tmp_path: Path) -> None:
    err = data_error(tmp_path, generator="no_such_module:make")
    assert err.where == f"{WHERE}.generator"
    assert "cannot import module 'no_such_module'" in err.message
    assert "ModuleNotFoundError" in err.message
    write_module(tmp_path, "broken_gen", "def make(:\n")
    assert "SyntaxError" in data_error(tmp_path, generator="broken_gen:make").message


def test_generator_function_missing(tmp_path: Path) -> None:
    write_module(tmp_path, "gen_nofunc", "x = 1\n")
    err = data_error(tmp_path, generator="gen_nofunc:make")
    assert "module 'gen_nofunc' has no function 'make'" in err.message


def test_generator_that_raises(tmp_path: Path) -> None:
    write_module(tmp_path, "gen_raises", "def make():\n    raise RuntimeError('disk gone')\n")
    err = data_error(tmp_path, generator="gen_raises:make")
    assert "generator gen_raises:make raised RuntimeError: disk gone" in err.message
    assert err.__cause__ is not None
    # A generator body runs lazily: an error after the first batch is caught all the same.
    write_module(
        tmp_path,
        "gen_raises_late",
        "import numpy as np\ndef make():\n    yield np.zeros((1, 8, 8, 1))\n    raise OSError('disk gone')\n",
    )
    assert "raised OSError: disk gone" in data_error(tmp_path, generator="gen_raises_late:make").message
    write_module(tmp_path, "gen_empty", "def make():\n    yield from ()\n")
    assert "yielded no batches" in data_error(tmp_path, generator="gen_empty:make").message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("def make():\n    return None\n", "returned nothing"),
        ("def make():\n    return 42\n", "returned int"),
        (
            "import numpy as np\ndef make():\n    return np.zeros((2, 4, 4, 1))\n",
            "batch 0 is an array but the model",
        ),
        (
            "import numpy as np\ndef make():\n"
            "    yield {'pixels': np.zeros((2, 4, 4, 1)), 'meta': np.zeros((2, 3))}\n"
            "    yield {'pixels': np.zeros((2, 4, 4, 1))}\n",
            "batch 1 has keys pixels but batch 0 had meta, pixels",
        ),
        (
            "import numpy as np\ndef make():\n"
            "    yield {'pixels': np.zeros((2, 4, 4, 1)), 'meta': np.zeros((2, 3))}\n"
            "    yield {'pixels': np.zeros((2, 4, 4)), 'meta': np.zeros((2, 3))}\n",
            "batches of 'pixels' do not stack",
        ),
        (
            "import numpy as np\ndef make():\n"
            "    yield {'pixels': np.zeros((2, 4, 4, 1)), 'meta': np.zeros((2, 5))}\n",
            "'meta' has shape (2, 5) which does not match (None, 3)",
        ),
    ],
)
def test_generator_output_that_does_not_fit(tmp_path: Path, body: str, expected: str) -> None:
    write_module(tmp_path, "gen_bad", body)
    err = data_error(tmp_path, MULTI, generator="gen_bad:make")
    assert expected in err.message
    assert err.where == f"{WHERE}.generator"


def test_dataset_size_defaults_to_the_arrays() -> None:
    ds = Dataset(inputs={"image": images(3)}, labels=None, digest="0" * 64)
    assert ds.size == 3
    with pytest.raises(DataError):
        Dataset(inputs={"image": images(3)}, labels=np.arange(2), digest="0" * 64)
    with pytest.raises(ValueError):
        next(ds.batches(0))


# -- constant calibration data --------------------------------------------------------


def calibration(tmp_path: Path, signature: IOSignature = DIGITS, **spec: object) -> Dataset:
    return load_dataset(CalibrationSpec.model_validate(spec), tmp_path, signature, WHERE)


def constant_error(tmp_path: Path, signature: IOSignature = DIGITS, **spec: object) -> str:
    with pytest.raises(DataError) as info:
        calibration(tmp_path, signature, **spec)
    err = info.value
    assert err.exit_code == EXIT_BAD_INPUT
    hint = err.hint()
    assert "\n" not in hint
    assert hint.startswith(f"{WHERE}: {tmp_path / 'c.npz'}: "), hint
    assert "calibration.allow_constant: true" in hint
    return hint


@pytest.mark.parametrize("value", [0.0, 0.5, -3.0])
def test_constant_calibration_is_refused_with_its_statistics(tmp_path: Path, value: float) -> None:
    save_npz(tmp_path / "c.npz", image=np.full((200, 8, 8, 1), value, dtype=np.float32))
    hint = constant_error(tmp_path, path="c.npz")
    assert f"input 'image' is constant (min {value:.4g}, max {value:.4g}, std 0, samples 200)" in hint


def test_identical_samples_are_refused(tmp_path: Path) -> None:
    one = images(1)
    save_npz(tmp_path / "c.npz", image=np.repeat(one, 50, axis=0))
    hint = constant_error(tmp_path, path="c.npz")
    assert "input 'image' holds 50 identical samples" in hint
    assert f"min {float(one.min()):.4g}, max {float(one.max()):.4g}" in hint
    assert "samples 50" in hint


def test_nearly_identical_samples_are_refused(tmp_path: Path) -> None:
    noise = np.random.default_rng(5).normal(0, 1e-6, (50, 8, 8, 1)).astype(np.float32)
    save_npz(tmp_path / "c.npz", image=np.repeat(images(1), 50, axis=0) + noise)
    assert "holds 50 nearly identical samples" in constant_error(tmp_path, path="c.npz")


def test_near_constant_value_is_refused(tmp_path: Path) -> None:
    data = np.full((20, 8, 8, 1), 1000.0, dtype=np.float32)
    data[0, 0, 0, 0] += 5e-4  # float32 rounding noise at this magnitude, not information
    assert data.max() > data.min()
    save_npz(tmp_path / "c.npz", image=data)
    assert "input 'image' is constant" in constant_error(tmp_path, path="c.npz")


def test_allow_constant_accepts_it(tmp_path: Path) -> None:
    save_npz(tmp_path / "c.npz", image=np.zeros((200, 8, 8, 1), dtype=np.float32))
    ds = calibration(tmp_path, path="c.npz", allow_constant=True)
    assert ds.size == 200


def test_representative_calibration_passes(sample_dir: Path) -> None:
    ds = load_dataset(CalibrationSpec(path="data/calibration.npz"), sample_dir, DIGITS, WHERE)
    assert ds.size == 200


def test_constant_is_checked_on_the_samples_used(tmp_path: Path) -> None:
    data = np.concatenate([np.zeros((10, 8, 8, 1), np.float32), images(10)])
    save_npz(tmp_path / "c.npz", image=data)
    assert calibration(tmp_path, path="c.npz").size == 20
    assert "samples 10" in constant_error(tmp_path, path="c.npz", samples=10)


def test_one_constant_input_of_several_is_named(tmp_path: Path) -> None:
    arrays = multi(30)
    arrays["meta"] = np.ones((30, 3), np.float32)
    save_npz(tmp_path / "c.npz", **arrays)
    hint = constant_error(tmp_path, MULTI, path="c.npz")
    assert "input 'meta' is constant (min 1, max 1, std 0, samples 30)" in hint


def test_integer_inputs_are_not_checked(tmp_path: Path) -> None:
    signature = IOSignature(
        inputs=(TensorSpec("ids", "int64", (None, 4)), TensorSpec("mask", "int64", (None, 4))),
        outputs=(TensorSpec("scores", "float32", (None, 2)),),
    )
    ids = np.random.default_rng(0).integers(0, 100, (16, 4))
    save_npz(tmp_path / "c.npz", ids=ids, mask=np.ones((16, 4), np.int64))  # a mask of ones is ordinary
    assert calibration(tmp_path, signature, path="c.npz").size == 16


def test_a_single_sample_is_not_called_identical(tmp_path: Path) -> None:
    save_npz(tmp_path / "c.npz", image=images(1))
    assert calibration(tmp_path, path="c.npz").size == 1


def test_constant_generator_is_refused(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        "flat_gen",
        """
        import numpy as np

        def batches():
            for _ in range(4):
                yield np.zeros((8, 8, 8, 1), np.float32)
        """,
    )
    with pytest.raises(DataError) as info:
        calibration(tmp_path, generator="flat_gen:batches")
    hint = info.value.hint()
    assert hint.startswith(f"{WHERE}: generator flat_gen:batches: input 'image' is constant"), hint
    assert "samples 32" in hint


def test_validation_data_is_not_checked_for_constants(tmp_path: Path) -> None:
    save_npz(tmp_path / "v.npz", image=np.zeros((5, 8, 8, 1), np.float32))
    assert load(tmp_path, path="v.npz").size == 5


# -- labels as class names ------------------------------------------------------------

LABELS = "edgepack.yaml: validation.labels"
CLASSES = [f"digit-{i}" for i in range(10)]


def validation(tmp_path: Path, classes: list[str] | None, labels: np.ndarray) -> Dataset:
    save_npz(tmp_path / "v.npz", image=images(len(labels)), labels=labels)
    spec = DataSpec(path="v.npz", labels="labels")
    return load_dataset(spec, tmp_path, DIGITS, "edgepack.yaml: validation", classes=classes)


def label_error(tmp_path: Path, classes: list[str] | None, labels: np.ndarray) -> str:
    with pytest.raises(DataError) as info:
        validation(tmp_path, classes, labels)
    assert info.value.exit_code == EXIT_BAD_INPUT
    hint = info.value.hint()
    assert "\n" not in hint
    assert hint.startswith(f"{LABELS}: "), hint
    return hint


def test_class_name_labels_map_to_ids(tmp_path: Path) -> None:
    names = np.array(["digit-3", "digit-0", "digit-9", "digit-3"])
    ds = validation(tmp_path, CLASSES, names)
    assert ds.labels is not None
    assert ds.labels.dtype == np.int64
    assert ds.labels.tolist() == [3, 0, 9, 3]
    assert ds.digest == hashlib.sha256((tmp_path / "v.npz").read_bytes()).hexdigest()


def test_byte_string_labels_and_a_column_of_names(tmp_path: Path) -> None:
    ds = validation(tmp_path, CLASSES, np.array([[b"digit-1"], [b"digit-2"]]))
    assert ds.labels is not None and ds.labels.tolist() == [1, 2]


def test_labels_keep_their_ids_when_classes_are_given(tmp_path: Path) -> None:
    ds = validation(tmp_path, CLASSES, np.array([0, 9, 4]))
    assert ds.labels is not None and ds.labels.tolist() == [0, 9, 4]


def test_unknown_class_name_is_refused(tmp_path: Path) -> None:
    hint = label_error(tmp_path, CLASSES, np.array(["digit-1", "digit-ten", "digit-2"]))
    assert "label 'digit-ten' is not a class in model.classes (digit-0, digit-1" in hint


def test_several_unknown_names_are_listed(tmp_path: Path) -> None:
    hint = label_error(tmp_path, CLASSES, np.array(["cat", "dog", "cat"]))
    assert "labels 'cat', 'dog' are not classes in model.classes" in hint


def test_names_without_classes_are_refused(tmp_path: Path) -> None:
    hint = label_error(tmp_path, None, np.array(["digit-1", "digit-2"]))
    assert "labels are class names ('digit-1', 'digit-2', ...) but the config lists no model.classes" in hint


def test_class_id_outside_the_classes_is_refused(tmp_path: Path) -> None:
    hint = label_error(tmp_path, CLASSES[:5], np.array([0, 7, 1]))
    assert "label 7 is not a class id of model.classes (0..4)" in hint


def test_one_hot_width_must_match_the_classes(tmp_path: Path) -> None:
    hint = label_error(tmp_path, CLASSES[:5], np.eye(10, dtype=np.float32)[[1, 2]])
    assert "one-hot labels have 10 columns but model.classes lists 5 classes" in hint


def test_classes_must_fit_an_output(tmp_path: Path) -> None:
    hint = label_error(tmp_path, ["a", "b", "c"], np.array(["a", "b"]))
    assert (
        "model.classes lists 3 classes but no model output has 3 class scores (probabilities (None, 10))"
        in hint
    )


def test_fidelity_takes_class_name_labels_and_picks_the_classes_output() -> None:
    from edgepack.config import Thresholds
    from edgepack.fidelity import evaluate

    scores = np.eye(3, dtype=np.float32)[[0, 1, 2, 1]]
    other = np.tile(np.eye(5, dtype=np.float32)[4], (4, 1))  # 5 scores: fits the ids too, but wrong
    reference = {"other": other, "scores": scores}
    names = np.array(["cat", "dog", "emu", "dog"])
    report = evaluate(reference, reference, names, Thresholds(), classes=["cat", "dog", "emu"])
    assert report.accuracy_output == "scores"
    assert report.metrics.reference_accuracy == 1.0
    with pytest.raises(DataError, match="label 'yak' is not a class"):
        evaluate(
            reference,
            reference,
            np.array(["cat", "dog", "yak", "dog"]),
            Thresholds(),
            classes=["cat", "dog", "emu"],
        )
    with pytest.raises(DataError, match="no model.classes"):
        evaluate(reference, reference, names, Thresholds())
