"""The runtime core that ships inside every artifact.

This package imports nothing from the rest of edgepack and no build-side dependency
(TensorFlow, converters, click, jinja2, pydantic). It uses relative imports only, so
it is copied into artifacts as the top-level package ``edgepack_runtime``.
"""

from .errors import BadRequestError, InferenceError, ModelLoadError
from .signature import IOSignature, Quantization, TensorSpec

__all__ = [
    "BadRequestError",
    "IOSignature",
    "InferenceError",
    "ModelLoadError",
    "Quantization",
    "TensorSpec",
]
