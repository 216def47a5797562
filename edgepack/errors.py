"""One error tree for the build side.

Every error carries the process exit code, the HTTP status an adapter would answer
with, and a one-line hint. The CLI's single error boundary prints ``hint()`` and
exits with ``exit_code``. Foreign exceptions are wrapped ``from`` their cause.

Exit codes: 0 ok, 1 failure, 2 bad input (config, model, data, request),
4 refused (verification or install refused an artifact).
"""

from __future__ import annotations

from .runtime.failures import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, EXIT_REFUSED, EdgepackError
from .runtime.trust.errors import (
    BadSignatureError,
    DigestMismatchError,
    DuplicateSubjectError,
    ExpectationError,
    FormatError,
    InstallError,
    MalformedAttestationError,
    MissingFileError,
    RollbackError,
    UnlistedFileError,
    UnsafePathError,
    VerificationError,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_REFUSED",
    "BadSignatureError",
    "DigestMismatchError",
    "DuplicateSubjectError",
    "EdgepackError",
    "ExpectationError",
    "FormatError",
    "InstallError",
    "MalformedAttestationError",
    "MissingFileError",
    "RollbackError",
    "UnlistedFileError",
    "UnsafePathError",
    "VerificationError",
]


# -- bad input (exit 2) -------------------------------------------------------------


class BadInputError(EdgepackError):
    exit_code = EXIT_BAD_INPUT
    http_status = 400


class ConfigError(BadInputError):
    """edgepack.yaml or a target profile is invalid; ``where`` is the file and field path."""


class ModelError(BadInputError):
    """A model file is missing, corrupt or not of the declared format."""


class DataError(BadInputError):
    """Calibration or validation data is missing or does not fit the model."""


class UnsupportedOpError(BadInputError):
    """A converter rejected the model; names the operation and the target."""

    def __init__(self, op: str, target: str, detail: str = "") -> None:
        self.op = op
        self.target = target
        tail = f" ({detail})" if detail else ""
        super().__init__(f"target {target}: operation {op} is not supported by the converter{tail}")


class BudgetExceededError(BadInputError):
    """An artifact is over a size limit of its target (e.g. Lambda's 50 MB / 250 MB)."""


class PlatformError(BadInputError):
    """No wheel fits the target platform, or the artifact cannot run on this host."""


# -- failures (exit 1) --------------------------------------------------------------


class PassError(EdgepackError):
    """An optimization pass failed for a reason other than bad input."""


class BackendMissingError(EdgepackError):
    """A framework needed by a pass or backend is not installed; names the extra."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(f"{module} is not installed: pip install 'edgepack[{extra}]'")
        self.module = module
        self.extra = extra


class FidelityError(EdgepackError):
    """The optimized model drifted from the reference past a threshold."""


class AbiAuditError(EdgepackError):
    """A shared object or wheel in the artifact does not fit the target platform."""


class PackagingError(EdgepackError):
    pass


class InvokeError(EdgepackError):
    pass


class DeployError(EdgepackError):
    pass


# The refusals (exit 4) live in the runtime (runtime/trust/errors.py): devices raise them too.
