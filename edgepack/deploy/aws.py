"""AWS clients for a deploy: credentials, one call path, error mapping, bounded retries.

Every request goes through ``Aws.call``, which

- retries throttling, conflicts with an update in progress, 5xx answers and dropped
  connections with exponential backoff and full jitter, a bounded number of times
  (botocore's own retries are off, so the bound is this one and tests can see it);
- maps what remains to edgepack's error tree: no credentials -> ``CredentialsMissingError``
  (exit 2, says how to provide them), access denied -> ``AccessDeniedError`` naming the IAM
  action (exit 1), anything else -> ``DeployError`` naming the action and AWS's code.

boto3 is imported here only, when a deploy runs (the ``aws`` extra).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackendMissingError, DeployError
from .checks import check_region
from .errors import AccessDeniedError, CredentialsMissingError, ThrottledError

# Codes AWS uses for "slow down" and for transient conflicts worth waiting out.
THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "RequestThrottled",
        "ProvisionedThroughputExceededException",
    }
)
# Lambda answers ResourceConflictException while a previous update is still in progress.
TRANSIENT_CODES = frozenset({"ResourceConflictException", "ServiceException", "InternalError"})
ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
)
BAD_CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
    }
)
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "NoSuchKey", "NoSuchBucket", "NotFound", "404"})

# The IAM action prefix of each service, and operations whose IAM action has another name.
_IAM_PREFIX = {"lambda": "lambda", "s3": "s3", "iam": "iam", "sts": "sts"}
_IAM_ACTION = {("s3", "HeadObject"): "GetObject", ("s3", "HeadBucket"): "ListBucket"}

CREDENTIALS_HINT = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
    "AWS_SESSION_TOKEN for temporary ones), or AWS_PROFILE for a profile in ~/.aws/credentials "
    "(`aws configure` or `aws sso login`), or run where an instance/task role provides them"
)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n))."""

    attempts: int = 6  # calls in all, the first included
    base_s: float = 0.2
    cap_s: float = 8.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, retry: int) -> float:
        return self.rng.uniform(0.0, min(self.cap_s, self.base_s * (2**retry)))


def _boto3() -> Any:
    try:
        import boto3
    except ImportError as e:
        raise BackendMissingError("boto3", "aws") from e
    return boto3


def new_session(region: str | None) -> Any:
    """A fresh boto3 session (the standard credential chain). Tests replace it to add event hooks."""
    return _boto3().session.Session(region_name=region)


def iam_action(service: str, operation: str) -> str:
    return f"{_IAM_PREFIX.get(service, service)}:{_IAM_ACTION.get((service, operation), operation)}"


class Aws:
    """Clients for one region (and endpoint), with ``call`` as the only way to use them."""

    def __init__(
        self,
        region: str | None = None,
        *,
        endpoint_url: str | None = None,
        retry: RetryPolicy | None = None,
        session: Any = None,
    ) -> None:
        self.session = session if session is not None else new_session(region)
        self.region: str = region or self.session.region_name or "us-east-1"
        check_region(self.region)
        self.endpoint_url = endpoint_url
        self.retry = retry or RetryPolicy()
        self.retries = 0  # retried calls, for reports and tests
        self._clients: dict[str, Any] = {}

    def check_credentials(self) -> None:
        """Refuse before the first request when the credential chain finds nothing."""
        from botocore.exceptions import BotoCoreError

        try:
            credentials = self.session.get_credentials()
        except BotoCoreError as e:  # e.g. a profile named in AWS_PROFILE that does not exist
            raise CredentialsMissingError(f"{CREDENTIALS_HINT} ({e})") from e
        if credentials is None:
            raise CredentialsMissingError(CREDENTIALS_HINT)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            from botocore.config import Config

            config = Config(
                retries={"total_max_attempts": 1, "mode": "standard"},  # ours, in ``call``
                connect_timeout=10,
                read_timeout=120,
                user_agent_extra="edgepack-deploy",
            )
            self._clients[service] = self.session.client(
                service, region_name=self.region, endpoint_url=self.endpoint_url, config=config
            )
        return self._clients[service]

    def call(self, service: str, operation: str, *, missing_ok: bool = False, **params: Any) -> Any:
        """``client.<operation>(**params)`` with retries and errors mapped; ``None`` for a missing
        resource when ``missing_ok``."""
        from botocore.exceptions import (
            ClientError,
            ConnectionError,
            NoCredentialsError,
            NoRegionError,
            PartialCredentialsError,
        )

        client = self.client(service)
        from botocore import xform_name

        method = getattr(client, xform_name(operation))
        action = iam_action(service, operation)
        retry = 0
        while True:
            try:
                return method(**params)
            except (NoCredentialsError, PartialCredentialsError) as e:
                raise CredentialsMissingError(f"{CREDENTIALS_HINT} ({e})") from e
            except NoRegionError as e:
                raise CredentialsMissingError("no AWS region: pass --region or set AWS_REGION") from e
            except ClientError as e:
                error = e.response.get("Error", {})
                code = str(error.get("Code", ""))
                message = str(error.get("Message", "")) or code
                status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if missing_ok and (code in NOT_FOUND_CODES or status == 404):
                    return None
                if code in ACCESS_DENIED_CODES or (status == 403 and code not in BAD_CREDENTIAL_CODES):
                    raise AccessDeniedError(action, message) from e
                if code in BAD_CREDENTIAL_CODES:
                    raise CredentialsMissingError(
                        f"AWS refused the credentials ({code}: {message}); {CREDENTIALS_HINT}"
                    ) from e
                transient = (
                    code in THROTTLE_CODES or code in TRANSIENT_CODES or status in (429, 500, 502, 503)
                )
                if not transient:
                    raise DeployError(f"{action} failed: {code}: {message}") from e
                if retry + 1 >= self.retry.attempts:
                    kind = ThrottledError if code in THROTTLE_CODES or status == 429 else DeployError
                    raise kind(
                        f"{action} still failing after {self.retry.attempts} attempts: {code}: {message}"
                    ) from e
            except ConnectionError as e:
                if retry + 1 >= self.retry.attempts:
                    raise DeployError(f"{action}: cannot reach AWS ({e})") from e
            self.retry.sleep(self.retry.delay(retry))
            retry += 1
            self.retries += 1
