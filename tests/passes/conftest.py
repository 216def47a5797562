"""Fixtures the pass tests share: the sample model, its data, and models no converter takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgepack.model.base import Batch, ModelArtifact, ModelSource
from edgepack.model.loader import load_model
from edgepack.runtime.signature import IOSignature, TensorSpec


@pytest.fixture(scope="session")
def digits(keras_model_path: Path) -> ModelSource:
    return load_model(keras_model_path)


@pytest.fixture(scope="session")
def validation(validation_npz: Path) -> tuple[Batch, np.ndarray]:
    data = np.load(validation_npz)
    return {"image": data["image"]}, data["labels"]


@pytest.fixture(scope="session")
def keras_reference(digits: ModelSource, validation: tuple[Batch, np.ndarray]) -> Batch:
    return digits.predict(validation[0])


@pytest.fixture(scope="session")
def sqrtm_savedmodel(tmp_path_factory: pytest.TempPathFactory) -> ModelSource:
    """A SavedModel using MatrixSquareRoot, which neither tf2onnx nor OpenVINO converts."""
    from edgepack.model.tf_env import import_tensorflow

    tf = import_tensorflow()

    class Sqrtm(tf.Module):  # type: ignore[name-defined]
        @tf.function(input_signature=[tf.TensorSpec((None, 4, 4), tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"y": tf.linalg.sqrtm(x)}

    module = Sqrtm()
    path = tmp_path_factory.mktemp("sqrtm") / "saved"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return load_model(path)


@pytest.fixture
def custom_op_onnx(tmp_path: Path) -> ModelArtifact:
    """``custom.onnx`` in the test's tmp_path: its only op lives in a custom domain no runtime knows."""
    import onnx
    from onnx import TensorProto, helper

    path = tmp_path / "custom.onnx"
    node = helper.make_node("FancyWarp", ["image"], ["probabilities"], domain="com.example")
    graph = helper.make_graph(
        [node],
        "custom",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 8, 8, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    onnx.save(proto, str(path))
    signature = IOSignature(
        inputs=(TensorSpec("image", "float32", (None, 8, 8, 1)),),
        outputs=(TensorSpec("probabilities", "float32", (None, 10)),),
    )
    return ModelArtifact(path=path, format="onnx", signature=signature)
