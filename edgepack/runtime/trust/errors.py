"""Why an artifact was refused: one exception per check, all exiting 4."""

from __future__ import annotations

from ..failures import EXIT_REFUSED, EdgepackError


class VerificationError(EdgepackError):
    """An artifact failed verification; subclasses name the check that refused."""

    exit_code = EXIT_REFUSED
    http_status = 403


class MalformedAttestationError(VerificationError):
    pass


class BadSignatureError(VerificationError):
    pass


class DigestMismatchError(VerificationError):
    pass


class UnlistedFileError(VerificationError):
    pass


class MissingFileError(VerificationError):
    pass


class DuplicateSubjectError(VerificationError):
    pass


class UnsafePathError(VerificationError):
    pass


class RollbackError(VerificationError):
    pass


class FormatError(VerificationError):
    """The file is not exactly the archive format its kind names (polyglots, prepended or trailing data)."""


class ExpectationError(VerificationError):
    """The artifact verified but is not the one asked for (name, target, minimum version)."""


class InstallError(EdgepackError):
    """A device install was refused or failed; the active version is unchanged."""

    exit_code = EXIT_REFUSED
