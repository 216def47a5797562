"""Deploy errors: stage-specific leaves of edgepack's one error tree (``edgepack.errors``)."""

from __future__ import annotations

from ..errors import BadInputError, DeployError


class DeployRequestError(BadInputError):
    """A value edgepack would send to AWS is invalid; names the value (exit 2)."""


class CredentialsMissingError(BadInputError):
    """No AWS credentials could be found; says how to provide them (exit 2)."""


class AccessDeniedError(DeployError):
    """AWS refused an action for lack of permission; names the IAM action (exit 1)."""

    def __init__(self, action: str, detail: str) -> None:
        super().__init__(f"access denied for {action}: {detail}; grant {action} to the deploying identity")
        self.action = action


class ThrottledError(DeployError):
    """AWS kept throttling a call after the bounded retries (exit 1)."""


class FunctionStateError(DeployError):
    """The function or a published version ended in a Failed state, or never settled (exit 1)."""


class SmokeTestError(DeployError):
    """The artifact's recorded sample did not reproduce through the exact zip (exit 1)."""
