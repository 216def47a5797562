#!/usr/bin/env python
"""The model zoo: small real models of every kind edgepack takes, built offline and deterministically.

Each zoo model becomes a project directory: the model, ``edgepack.yaml`` (every default
target), ``calibration.npz``, ``validation.npz`` (with ``labels`` where the model is a
classifier of the data) and a signing key (``keys/zoo.key``). Data is scikit-learn's
bundled 8x8 digits (1,797 real images; no download), upsampled where a model wants more.

    .venv/bin/python tests/zoo/make_zoo.py --out /tmp/zoo [--only keras_sequential ...]

From Python, ``ensure_zoo(cache_root)`` returns the directory holding one project per
model, building it (in a subprocess, so that TensorFlow starts single-threaded) only when
nothing under ``cache_root`` matches the zoo's content key: this file, the committed
PyTorch exports and the versions of every framework that makes a model.

Determinism: fixed seeds (``keras.utils.set_random_seed``), deterministic TF ops, one
intra/inter-op thread; same inputs give the same models (signing keys are fresh per build
of the zoo: they decide no model bytes).

How each model is made (the table the report quotes):

- ``keras_sequential``: ``keras.Sequential([keras.Input((8, 8, 1)), Conv2D, MaxPooling2D,
  Flatten, Dense(softmax)])`` saved as ``.keras``.
- ``keras_functional_h5``: a functional CNN saved as legacy HDF5 (``.h5``).
- ``keras_subclassed``: a subclassed ``keras.Model`` (layers in ``__init__``, ``call()``),
  exported with ``model.export()`` as a SavedModel (a ``.keras`` of a subclassed model
  needs its class importable at load time, which a build host does not have).
- ``keras_subclassed_keras``: the same subclassed model saved as ``.keras`` anyway:
  what a user will try; expected to be refused with one line naming the file.
- ``keras_multi_io``: functional, inputs ``image`` (8, 8, 1) and ``row_ink`` (8,), outputs
  ``probabilities`` (10, softmax) and ``ink`` (1, regression of mean intensity).
- ``savedmodel``: a ``tf.Module`` whose ``serve`` tf.function (input ``image``, output
  ``{"probabilities"}``) wraps a trained Keras CNN, saved with ``tf.saved_model.save``.
- ``mobilenet_like``: MobileNetV2-style inverted residual blocks (1x1 expand, 3x3
  depthwise, 1x1 linear project, BatchNorm, ReLU6, residual adds) at small width on
  32x32x3 digits (bilinear upsampling, three differently scaled channels), ``.keras``.
- ``torch_cnn``, ``torch_int64``: copied from ``committed/`` (see export_torch.py).
- ``sklearn_onnx``: ``MLPClassifier(32)`` on the 64 pixel features, skl2onnx with
  ``zipmap: False`` (outputs ``label`` int64 and ``probabilities``), input ``features``.
- ``tf_onnx``: a Keras functional CNN converted with ``tf2onnx.convert.from_function``.
- ``tflite_file``: a Keras functional CNN converted to a float32 ``.tflite``.
- ``unsupported_op``: a SavedModel computing ``tf.linalg.sqrtm`` (MatrixSquareRoot), which
  no converter takes, on random symmetric positive definite 4x4 matrices (no labels).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
PASSES_TESTS = HERE.parent / "passes"  # the accuracy-control tests' outlier model
COMMITTED = HERE / "committed"
SEED = 1234
VALIDATION = 500
CALIBRATION = 200
COMPLETE = ".zoo-complete"

# Every default target a zoo project is built for, with the profiles' own defaults.
TARGETS = ("lambda-x86_64", "lambda-arm64", "rpi-tflite", "intel-openvino", "jetson-trt")
TARGET_CONFIG: list[Any] = list(TARGETS)
# Libraries whose version decides a zoo model's bytes: part of the content key.
KEY_PACKAGES = (
    "numpy",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "scikit-learn",
    "skl2onnx",
    "tf2onnx",
    "onnx",
)


@dataclass(frozen=True)
class ZooModel:
    name: str
    model_file: str  # file or directory name inside the project
    labelled: bool
    make: Callable[[Path], dict[str, Any]]  # writes the model; returns {"calibration": [...], ...}
    description: str


# -- data ------------------------------------------------------------------------------


def digits() -> dict[str, np.ndarray]:
    """The sample's split: (n, 8, 8, 1) float32 in [0, 1], int64 labels, 500 held out."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images.astype(np.float32) / 16.0)[..., np.newaxis]
    labels = d.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(images))
    images, labels = images[order], labels[order]
    return {
        "train_x": images[VALIDATION:],
        "train_y": labels[VALIDATION:],
        "val_x": images[:VALIDATION],
        "val_y": labels[:VALIDATION],
    }


def upsample_rgb(images: np.ndarray, size: int = 32) -> np.ndarray:
    """(n, 8, 8, 1) -> (n, size, size, 3): bilinear, channels scaled 1.0 / 0.8 / 0.6."""
    import tensorflow as tf

    big = tf.image.resize(images, (size, size), method="bilinear").numpy()
    return np.concatenate([big * 1.0, big * 0.8, big * 0.6], axis=-1).astype(np.float32)


def row_ink(images: np.ndarray) -> np.ndarray:
    return images.mean(axis=(2, 3)).astype(np.float32)  # (n, 8): mean of each row


# -- Keras helpers ---------------------------------------------------------------------


def _keras() -> Any:
    import keras

    return keras


def _fit(model: Any, x: Any, y: Any, epochs: int, loss: Any = "sparse_categorical_crossentropy") -> Any:
    keras = _keras()
    keras.utils.set_random_seed(SEED)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    model.fit(x, y, epochs=epochs, batch_size=32, shuffle=True, verbose=0)
    return model


def _functional_cnn(name: str) -> Any:
    keras = _keras()
    inputs = keras.Input(shape=(8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def _trained_cnn(d: dict[str, np.ndarray], name: str, epochs: int = 12) -> Any:
    return _fit(_functional_cnn(name), d["train_x"], d["train_y"], epochs)


def _digits_data(d: dict[str, np.ndarray]) -> dict[str, Any]:
    return {
        "calibration": [d["train_x"][:CALIBRATION]],
        "validation": [d["val_x"]],
        "labels": d["val_y"],
    }


# -- the models ------------------------------------------------------------------------


def make_keras_sequential(project: Path) -> dict[str, Any]:
    keras = _keras()
    d = digits()
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="sequential_cnn",
    )
    _fit(model, d["train_x"], d["train_y"], 12).save(project / "model.keras")
    return _digits_data(d)


def make_keras_functional_h5(project: Path) -> dict[str, Any]:
    d = digits()
    _trained_cnn(d, "functional_h5").save(project / "model.h5")
    return _digits_data(d)


def _subclassed_model() -> Any:
    keras = _keras()

    class ZooSubclassed(keras.Model):  # type: ignore[misc, name-defined]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.conv1 = keras.layers.Conv2D(16, 3, padding="same", activation="relu")
            self.conv2 = keras.layers.Conv2D(32, 3, padding="same", activation="relu")
            self.pool = keras.layers.MaxPooling2D(2)
            self.flatten = keras.layers.Flatten()
            self.hidden = keras.layers.Dense(64, activation="relu")
            self.head = keras.layers.Dense(10, activation="softmax")

        def call(self, inputs: Any) -> Any:
            x = self.pool(self.conv2(self.conv1(inputs)))
            return self.head(self.hidden(self.flatten(x)))

    model = ZooSubclassed(name="zoo_subclassed")
    model(np.zeros((1, 8, 8, 1), np.float32))  # build
    return model


def make_keras_subclassed(project: Path) -> dict[str, Any]:
    d = digits()
    model = _fit(_subclassed_model(), d["train_x"], d["train_y"], 12)
    model.export(str(project / "saved_model"), verbose=False)
    return _digits_data(d)


def make_keras_subclassed_keras(project: Path) -> dict[str, Any]:
    d = digits()
    model = _fit(_subclassed_model(), d["train_x"], d["train_y"], 2)
    model.save(project / "model.keras")
    return _digits_data(d)


def make_keras_multi_io(project: Path) -> dict[str, Any]:
    keras = _keras()
    d = digits()
    image = keras.Input(shape=(8, 8, 1), name="image")
    ink_rows = keras.Input(shape=(8,), name="row_ink")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(image)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Concatenate()([x, keras.layers.Dense(16, activation="relu")(ink_rows)])
    x = keras.layers.Dense(64, activation="relu")(x)
    probabilities = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    ink = keras.layers.Dense(1, name="ink")(x)
    model = keras.Model([image, ink_rows], [probabilities, ink], name="multi_io")
    train_ink = d["train_x"].mean(axis=(1, 2, 3))[:, None]
    _fit(
        model,
        [d["train_x"], row_ink(d["train_x"])],
        {"probabilities": d["train_y"], "ink": train_ink},
        12,
        loss={"probabilities": "sparse_categorical_crossentropy", "ink": "mse"},
    ).save(project / "model.keras")
    return {
        "calibration": [d["train_x"][:CALIBRATION], row_ink(d["train_x"][:CALIBRATION])],
        "validation": [d["val_x"], row_ink(d["val_x"])],
        "labels": d["val_y"],
    }


def make_savedmodel(project: Path) -> dict[str, Any]:
    import tensorflow as tf

    d = digits()
    keras_model = _trained_cnn(d, "savedmodel_cnn")

    class Classifier(tf.Module):  # type: ignore[misc, name-defined]
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec((None, 8, 8, 1), tf.float32, name="image")])
        def serve(self, image: Any) -> dict[str, Any]:
            return {"probabilities": self.model(image, training=False)}

    module = Classifier(keras_model)
    path = project / "saved_model"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return _digits_data(d)


def _inverted_residual(x: Any, expand: int, out: int, stride: int, name: str) -> Any:
    keras = _keras()
    layers = keras.layers
    channels = x.shape[-1]
    y = layers.Conv2D(channels * expand, 1, use_bias=False, name=f"{name}_expand")(x)
    y = layers.BatchNormalization(momentum=0.9, name=f"{name}_expand_bn")(y)
    y = layers.ReLU(6.0, name=f"{name}_expand_relu6")(y)
    y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(y)
    y = layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(y)
    y = layers.ReLU(6.0, name=f"{name}_dw_relu6")(y)
    y = layers.Conv2D(out, 1, use_bias=False, name=f"{name}_project")(y)
    y = layers.BatchNormalization(momentum=0.9, name=f"{name}_project_bn")(
        y
    )  # linear bottleneck: no activation
    if stride == 1 and channels == out:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def make_mobilenet_like(project: Path) -> dict[str, Any]:
    keras = _keras()
    layers = keras.layers
    d = digits()
    inputs = keras.Input(shape=(32, 32, 3), name="image")
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu6")(x)
    x = _inverted_residual(x, 1, 16, 1, "block1")
    x = _inverted_residual(x, 4, 24, 2, "block2")
    x = _inverted_residual(x, 4, 24, 1, "block3")
    x = _inverted_residual(x, 4, 32, 2, "block4")
    x = layers.Conv2D(64, 1, use_bias=False, name="head")(x)
    x = layers.BatchNormalization(momentum=0.9, name="head_bn")(x)
    x = layers.ReLU(6.0, name="head_relu6")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="mobilenet_like")
    train_x = upsample_rgb(d["train_x"])
    _fit(model, train_x, d["train_y"], 10).save(project / "model.keras")
    return {
        "calibration": [train_x[:CALIBRATION]],
        "validation": [upsample_rgb(d["val_x"])],
        "labels": d["val_y"],
    }


def _committed(name: str, input_name: str) -> Callable[[Path], dict[str, Any]]:
    def make(project: Path) -> dict[str, Any]:
        shutil.copyfile(COMMITTED / f"{name}.onnx", project / "model.onnx")
        with np.load(COMMITTED / f"{name}.npz") as data:
            return {
                "calibration": [data[f"calibration_{input_name}"]],
                "validation": [data[f"validation_{input_name}"]],
                "labels": data["validation_labels"],
            }

    return make


def make_sklearn_onnx(project: Path) -> dict[str, Any]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.neural_network import MLPClassifier

    d = digits()
    flat = lambda a: a.reshape(len(a), 64)  # noqa: E731
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=SEED)
    clf.fit(flat(d["train_x"]), d["train_y"])
    proto = convert_sklearn(
        clf,
        initial_types=[("features", FloatTensorType([None, 64]))],
        options={id(clf): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    (project / "model.onnx").write_bytes(proto.SerializeToString())
    return {
        "calibration": [flat(d["train_x"][:CALIBRATION])],
        "validation": [flat(d["val_x"])],
        "labels": d["val_y"],
    }


def make_tf_onnx(project: Path) -> dict[str, Any]:
    import tensorflow as tf
    import tf2onnx

    d = digits()
    model = _trained_cnn(d, "tf_onnx_cnn")
    spec = [tf.TensorSpec((None, 8, 8, 1), tf.float32, name="image")]

    @tf.function(input_signature=spec)
    def serve(image: Any) -> dict[str, Any]:
        return {"probabilities": model(image, training=False)}

    tf2onnx.convert.from_function(
        serve, input_signature=spec, opset=17, output_path=str(project / "model.onnx")
    )
    return _digits_data(d)


def make_tflite_file(project: Path) -> dict[str, Any]:
    import tensorflow as tf

    d = digits()
    model = _trained_cnn(d, "tflite_cnn")
    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        (project / "model.tflite").write_bytes(converter.convert())
    return _digits_data(d)


def make_unsupported_op(project: Path) -> dict[str, Any]:
    import tensorflow as tf

    class Sqrtm(tf.Module):  # type: ignore[misc, name-defined]
        @tf.function(input_signature=[tf.TensorSpec((None, 4, 4), tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"y": tf.linalg.sqrtm(x)}

    module = Sqrtm()
    tf.saved_model.save(module, str(project / "saved_model"), signatures={"serving_default": module.serve})
    rng = np.random.default_rng(SEED)
    a = rng.normal(size=(264, 4, 4)).astype(np.float32)
    spd = (a @ a.transpose(0, 2, 1) + np.eye(4, dtype=np.float32)).astype(np.float32)
    return {"calibration": [spd[:200]], "validation": [spd[200:]], "labels": None}


def make_outlier_mlp(project: Path) -> dict[str, Any]:
    """The accuracy-control tests' model: two units 1000x larger than the rest, which full
    int8 ruins (tests/passes/mixed_models.py). Unlabelled: agreement with the original only."""
    if str(PASSES_TESTS) not in sys.path:
        sys.path.insert(0, str(PASSES_TESTS))
    from mixed_models import build_outlier_model, features

    build_outlier_model(project / "model.keras")
    return {
        "calibration": [features(1, CALIBRATION)],
        "validation": [features(2, VALIDATION)],
        "labels": None,
    }


ZOO: dict[str, ZooModel] = {
    m.name: m
    for m in [
        ZooModel(
            "keras_sequential", "model.keras", True, make_keras_sequential, "keras.Sequential CNN, .keras"
        ),
        ZooModel(
            "keras_functional_h5", "model.h5", True, make_keras_functional_h5, "functional CNN, legacy .h5"
        ),
        ZooModel(
            "keras_subclassed",
            "saved_model",
            True,
            make_keras_subclassed,
            "subclassed keras.Model, model.export()",
        ),
        ZooModel(
            "keras_subclassed_keras",
            "model.keras",
            True,
            make_keras_subclassed_keras,
            "subclassed keras.Model saved as .keras (class not importable at load)",
        ),
        ZooModel(
            "keras_multi_io", "model.keras", True, make_keras_multi_io, "functional, 2 inputs / 2 outputs"
        ),
        ZooModel("savedmodel", "saved_model", True, make_savedmodel, "tf.Module + tf.saved_model.save"),
        ZooModel(
            "mobilenet_like", "model.keras", True, make_mobilenet_like, "inverted residuals, ReLU6, 32x32x3"
        ),
        ZooModel(
            "torch_cnn", "model.onnx", True, _committed("torch_cnn", "image"), "PyTorch CNN, NCHW, ONNX"
        ),
        ZooModel(
            "torch_int64",
            "model.onnx",
            True,
            _committed("torch_int64", "tokens"),
            "PyTorch int64 tokens, ONNX",
        ),
        ZooModel(
            "sklearn_onnx", "model.onnx", True, make_sklearn_onnx, "sklearn MLP via skl2onnx (zipmap off)"
        ),
        ZooModel("tf_onnx", "model.onnx", True, make_tf_onnx, "Keras CNN via tf2onnx.from_function"),
        ZooModel("tflite_file", "model.tflite", True, make_tflite_file, "Keras CNN as float .tflite"),
        ZooModel(
            "outlier_mlp", "model.keras", False, make_outlier_mlp, "MLP with outlier units: full int8 fails"
        ),
        ZooModel(
            "unsupported_op", "saved_model", False, make_unsupported_op, "SavedModel with tf.linalg.sqrtm"
        ),
    ]
}


# -- projects --------------------------------------------------------------------------


def write_project(spec: ZooModel, project: Path) -> Path:
    """Build one zoo model into ``project`` (created): model, data, edgepack.yaml, signing key."""
    import yaml

    from edgepack.model.loader import load_model
    from edgepack.signing.keys import generate_keypair

    project.mkdir(parents=True)
    data = spec.make(project)
    model_path = project / spec.model_file
    try:
        names = load_model(model_path).artifact.signature.input_names
    except Exception:  # a model edgepack refuses to load: name the inputs as built
        names = ("image",) * len(data["calibration"])
    np.savez(project / "calibration.npz", **dict(zip(names, data["calibration"], strict=True)))
    validation = dict(zip(names, data["validation"], strict=True))
    if data["labels"] is not None:
        validation["labels"] = data["labels"]
    np.savez(project / "validation.npz", **validation)
    generate_keypair(project / "keys" / "zoo")
    config: dict[str, Any] = {
        "name": "zoo-" + spec.name.replace("_", "-"),
        "version": "1.0.0",
        "model": {"path": spec.model_file},
        "calibration": {"path": "calibration.npz"},
        "validation": {"path": "validation.npz"},
        "targets": TARGET_CONFIG,
        "signing": {"key": "keys/zoo.key"},
    }
    if data["labels"] is not None:
        config["validation"]["labels"] = "labels"
    header = f"# zoo model {spec.name}: {spec.description} (written by tests/zoo/make_zoo.py)\n"
    (project / "edgepack.yaml").write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return project


def _configure_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()


def build_zoo(out: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Write the named zoo models (all by default) as projects under ``out``."""
    _configure_tensorflow()
    out.mkdir(parents=True, exist_ok=True)
    built = {}
    for name in names or list(ZOO):
        project = out / name
        if project.exists():
            shutil.rmtree(project)
        built[name] = write_project(ZOO[name], project)
        print(f"zoo: built {name}", file=sys.stderr, flush=True)
    return built


def zoo_key() -> str:
    """Content key: this file, the committed exports, the framework versions."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update((PASSES_TESTS / "mixed_models.py").read_bytes())
    for f in sorted(COMMITTED.iterdir()):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    for package in KEY_PACKAGES:
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            version = "-"
        h.update(f"{package}={version}\n".encode())
    return h.hexdigest()[:20]


def ensure_zoo(cache_root: Path) -> Path:
    """The zoo directory under ``cache_root`` for the current content key, built if missing."""
    final = Path(cache_root) / f"zoo-{zoo_key()}"
    if (final / COMPLETE).is_file():
        return final
    Path(cache_root).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_root, prefix=".zoo-building-") as tmp:
        staging = Path(tmp) / "zoo"
        env = {**os.environ, "PYTHONHASHSEED": "0", "TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "2"}
        subprocess.run([sys.executable, str(Path(__file__)), "--out", str(staging)], check=True, env=env)
        (staging / COMPLETE).write_text("ok\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    return final


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="directory to write one project per model into"
    )
    parser.add_argument("--only", nargs="*", choices=sorted(ZOO), help="build only these models")
    args = parser.parse_args(argv)
    build_zoo(args.out, args.only)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))  # this checkout's edgepack, whatever is installed
    main()
