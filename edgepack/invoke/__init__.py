"""Run Lambda artifacts locally, the way Lambda's Python runtime runs them."""

from __future__ import annotations

from .local import (
    InvokeResult,
    InvokeTimeoutError,
    LambdaTarget,
    LocalLambda,
    invoke_local,
    invoke_local_many,
)

__all__ = [
    "InvokeResult",
    "InvokeTimeoutError",
    "LambdaTarget",
    "LocalLambda",
    "invoke_local",
    "invoke_local_many",
]
