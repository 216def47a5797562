"""Train the sample model: a small CNN on scikit-learn's bundled 8x8 digits.

Deterministic (fixed seeds, deterministic ops), no download: the digits dataset ships
inside scikit-learn. Writes the Keras model and the calibration/validation data:

    python samples/digits/train.py          # -> model/digits.keras, data/*.npz
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GLOG_minloglevel", "2")

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 1234
CALIBRATION_SAMPLES = 200
VALIDATION_SAMPLES = 500


def load_digits_split() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images.astype(np.float32) / 16.0)[..., np.newaxis]  # (n, 8, 8, 1) in [0, 1]
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(images))
    images, labels = images[order], labels[order]
    n_val = VALIDATION_SAMPLES
    return {
        "train_x": images[n_val:],
        "train_y": labels[n_val:],
        "val_x": images[:n_val],
        "val_y": labels[:n_val],
    }


def build_model():  # type: ignore[no-untyped-def]
    import keras

    inputs = keras.Input(shape=(8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def main() -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    split = load_digits_split()

    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(split["train_x"], split["train_y"], epochs=15, batch_size=32, shuffle=True, verbose=0)
    _, accuracy = model.evaluate(split["val_x"], split["val_y"], verbose=0)

    (HERE / "model").mkdir(exist_ok=True)
    (HERE / "data").mkdir(exist_ok=True)
    model.save(HERE / "model" / "digits.keras")
    calibration = split["train_x"][:CALIBRATION_SAMPLES]
    np.savez(HERE / "data" / "calibration.npz", image=calibration)
    np.savez(HERE / "data" / "validation.npz", image=split["val_x"], labels=split["val_y"])
    print(f"held-out accuracy {accuracy:.4f} on {len(split['val_x'])} digits")


if __name__ == "__main__":
    main()
