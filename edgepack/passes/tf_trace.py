"""A Keras model or SavedModel as one traced ``tf.function``, for converters that trace.

tf2onnx (``onnx-convert``) and OpenVINO (``openvino-convert``) both convert this function,
so every converter sees the same graph with the public IO names and order.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelError, PassError
from ..model.base import ModelArtifact
from ..model.tf_env import import_keras, import_tensorflow
from .converter_errors import first_line


def tf_function_for(model: ModelArtifact) -> tuple[Any, list[Any]]:
    """A ``tf.function`` over a Keras or SavedModel model, with public IO names and order.

    Inputs are ``tf.TensorSpec``s named after the public input names (dynamic axes kept
    as ``None``); the function returns a list of outputs in the order of
    ``model.signature.outputs``. Both tf2onnx and OpenVINO trace it, so every converter
    sees the same graph with the same names.
    """
    tf = import_tensorflow()
    sig = model.signature
    native_in = model.native_inputs or sig.input_names
    native_out = model.native_outputs or sig.output_names
    specs = [tf.TensorSpec(shape=list(t.shape), dtype=tf.as_dtype(t.dtype), name=t.name) for t in sig.inputs]
    if model.format == "keras":
        keras = import_keras()
        try:
            net = keras.saving.load_model(model.path, compile=False)
        except Exception as e:
            raise ModelError(f"cannot load Keras model: {first_line(e)}", where=str(model.path)) from e
        keras_names = [t.name for t in net.inputs]

        def call(*args: Any) -> Any:
            if len(args) == 1:
                return net(args[0], training=False)
            if set(native_in) == set(keras_names):
                return net(dict(zip(native_in, args, strict=True)), training=False)
            return net(list(args), training=False)

    elif model.format == "savedmodel":
        try:
            loaded = tf.saved_model.load(str(model.path))
        except Exception as e:
            raise ModelError(f"cannot load SavedModel: {first_line(e)}", where=str(model.path)) from e
        # The signature the model source chose (serving_default, or a SavedModel's only one).
        key = str(model.details.get("signature", "serving_default"))
        if key not in loaded.signatures and len(loaded.signatures) == 1:
            key = next(iter(loaded.signatures))
        if key not in loaded.signatures:
            raise ModelError(f"SavedModel has no {key!r} signature", where=str(model.path))

        def call(*args: Any) -> Any:
            # Look the signature up through ``loaded`` at trace time: the signature function
            # does not own the variables, the loaded object does, and must outlive the trace.
            return loaded.signatures[key](**dict(zip(native_in, args, strict=True)))

    else:
        raise PassError(f"cannot trace a {model.format} model with TensorFlow", where=str(model.path))

    def ordered(result: Any) -> list[Any]:
        if isinstance(result, dict):
            missing = [n for n in native_out if n not in result]
            if missing:
                raise ModelError(
                    f"model outputs {sorted(result)} do not include {missing}", where=str(model.path)
                )
            return [result[n] for n in native_out]
        if isinstance(result, list | tuple):
            return list(result)
        return [result]

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> list[Any]:
        outs = ordered(call(*args))
        if len(outs) != len(sig.outputs):
            raise ModelError(
                f"model returns {len(outs)} outputs, its signature names {len(sig.outputs)}",
                where=str(model.path),
            )
        # Identity ops give every output a tensor of its own, even when two outputs share one.
        return [tf.identity(o) for o in outs]

    return serve, specs
