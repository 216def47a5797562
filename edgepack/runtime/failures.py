"""The error base shared by the build side and the device side.

It lives in the runtime because the device installer and the verifier ship inside
artifacts and must raise the same errors ``edgepack verify`` raises on a workstation.
Every error carries the process exit code, the HTTP status an adapter would answer
with, and a one-line hint.

Exit codes: 0 ok, 1 failure, 2 bad input (config, model, data, request),
4 refused (verification or install refused an artifact).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_REFUSED = 4


class EdgepackError(Exception):
    """Base of every error edgepack raises on purpose."""

    exit_code: int = EXIT_FAILURE
    http_status: int = 500

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def hint(self) -> str:
        """One line naming what is wrong and where."""
        text = f"{self.where}: {self.message}" if self.where else self.message
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.hint()
