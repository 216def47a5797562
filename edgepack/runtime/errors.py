"""Errors raised while serving. Adapters map ``status`` to their transport."""

from __future__ import annotations


class InferenceError(Exception):
    """Base of runtime errors; ``status`` is the HTTP-style status to answer with."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}


class BadRequestError(InferenceError):
    """The request does not fit the model (name, shape, dtype, encoding)."""

    status = 400
    code = "bad_request"


class ModelLoadError(InferenceError):
    """The model or its backend could not be loaded."""

    status = 500
    code = "model_load_failed"


class BackendUnavailableError(ModelLoadError):
    """No installed runtime package provides the backend the artifact needs."""

    code = "backend_unavailable"
