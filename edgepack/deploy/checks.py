"""Every value edgepack sends to Lambda, S3 or IAM, checked before the call.

moto (and so every test against it) accepts weights above 1, unknown versions, runtime
``python9.9``, a 60 MiB inline zip; real Lambda refuses some of these late, after an
upload, and some never. Each check here raises ``DeployRequestError`` naming the value
and the rule (exit 2), and returns nothing otherwise. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ..invoke.local import RESERVED_ENV as LAMBDA_RESERVED_ENV
from ..targets import LAMBDA_RUNTIMES
from .errors import DeployRequestError

# Lambda's quotas (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024  # zipped, inline in the request (ZipFile)
MAX_UNZIPPED_BYTES = 262_144_000  # function + all its layers, unzipped
MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 10_240
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 1, 900
MAX_ENV_BYTES = 4 * 1024  # all keys and values together
MAX_LAYERS = 5
MAX_DESCRIPTION = 256
MAX_TAGS = 50
MAX_TAG_KEY, MAX_TAG_VALUE = 128, 256

# Runtimes Lambda offers that edgepack artifacts can target (the target profiles' list).
SUPPORTED_RUNTIMES: tuple[str, ...] = tuple(LAMBDA_RUNTIMES)
SNAPSTART_RUNTIMES: tuple[str, ...] = tuple(
    r for r in SUPPORTED_RUNTIMES if tuple(map(int, r.removeprefix("python").split("."))) >= (3, 12)
)
# Lambda's names for the manifest's architectures.
ARCHITECTURES: dict[str, str] = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}

# Variables Lambda sets itself and refuses in a function's configuration: one list, the local invoke's.
RESERVED_ENV = LAMBDA_RESERVED_ENV

# The API's own patterns, narrowed to what edgepack sends (names, not ARNs, for functions).
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ALIAS_NAME = re.compile(r"(?!\d+$)[A-Za-z0-9_-]{1,128}")
_LAYER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ENV_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_HANDLER = re.compile(r"[^\s]{1,128}")
_ROLE_ARN = re.compile(r"arn:aws[a-zA-Z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}")
_LAYER_VERSION_ARN = re.compile(
    r"arn:aws[a-zA-Z-]*:lambda:[a-z]{2}(-gov)?-[a-z]+-\d:\d{12}:layer:[A-Za-z0-9_-]{1,140}:[1-9]\d*"
)
_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_VERSION = re.compile(r"[1-9]\d{0,9}")


def _refuse(what: str, value: object, rule: str) -> DeployRequestError:
    return DeployRequestError(f"{what} {value!r}: {rule}")


def check_function_name(name: str) -> None:
    if not _FUNCTION_NAME.fullmatch(name):
        raise _refuse("function name", name, "1-64 letters, digits, '-' or '_'")


def check_alias_name(name: str) -> None:
    if not _ALIAS_NAME.fullmatch(name):
        raise _refuse("alias name", name, "1-128 letters, digits, '-' or '_', not only digits")


def check_layer_name(name: str) -> None:
    if not _LAYER_NAME.fullmatch(name):
        raise _refuse("layer name", name, "1-64 letters, digits, '-' or '_'")


def check_canary(percent: float) -> None:
    """A canary sends ``percent`` of the alias's traffic to the new version: strictly between 0 and 100."""
    if not 0 < percent < 100:
        raise _refuse("canary percent", percent, "must be above 0 and below 100")


def canary_weight(percent: float) -> float:
    """The alias routing weight (0..1 exclusive) for ``percent``, rounded to 1e-5."""
    check_canary(percent)
    weight = round(percent / 100.0, 5)
    if not 0.0 < weight < 1.0:
        raise _refuse("canary percent", percent, "rounds to a weight of 0 or 1")
    return weight


def check_runtime(runtime: str) -> None:
    if runtime not in SUPPORTED_RUNTIMES:
        raise _refuse("runtime", runtime, f"not a Lambda Python runtime ({', '.join(SUPPORTED_RUNTIMES)})")


def lambda_architecture(arch: str) -> str:
    """Lambda's spelling (``x86_64`` | ``arm64``) of the manifest's ``target.arch``."""
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        raise _refuse("architecture", arch, "Lambda runs x86_64 or arm64 (aarch64)") from None


def check_handler(handler: str) -> None:
    if not _HANDLER.fullmatch(handler) or "." not in handler:
        raise _refuse("handler", handler, "expected module.function, at most 128 characters")


def check_memory(memory_mb: object) -> None:
    if type(memory_mb) is not int or not MIN_MEMORY_MB <= memory_mb <= MAX_MEMORY_MB:
        raise _refuse("memory (MB)", memory_mb, f"an integer from {MIN_MEMORY_MB} to {MAX_MEMORY_MB}")


def check_timeout(timeout_s: object) -> None:
    if type(timeout_s) is not int or not MIN_TIMEOUT_S <= timeout_s <= MAX_TIMEOUT_S:
        raise _refuse("timeout (s)", timeout_s, f"an integer from {MIN_TIMEOUT_S} to {MAX_TIMEOUT_S}")


def check_environment(env: Mapping[str, str]) -> None:
    size = 0
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise _refuse("environment variable", key, "a letter, then letters, digits or '_'")
        if key in RESERVED_ENV:
            raise _refuse("environment variable", key, "reserved by Lambda")
        if not isinstance(value, str):
            raise _refuse(f"environment variable {key}", value, "values must be strings")
        size += len(key.encode()) + len(value.encode())
    if size > MAX_ENV_BYTES:
        raise _refuse("environment", f"{size} bytes", f"Lambda allows {MAX_ENV_BYTES} bytes in all")


def check_role_arn(arn: str) -> None:
    if not _ROLE_ARN.fullmatch(arn):
        raise _refuse("role ARN", arn, "expected arn:aws:iam::<12-digit account>:role/<name>")


def check_layer_arns(arns: Sequence[str]) -> None:
    for arn in arns:
        if not _LAYER_VERSION_ARN.fullmatch(arn):
            raise _refuse(
                "layer ARN", arn, "expected arn:aws:lambda:<region>:<account>:layer:<name>:<version>"
            )
    if len(arns) > MAX_LAYERS:
        raise _refuse("layers", len(arns), f"a function takes at most {MAX_LAYERS}")
    if len(set(arns)) != len(arns):
        raise _refuse("layers", list(arns), "the same layer twice")


def check_region(region: str) -> None:
    if not _REGION.fullmatch(region):
        raise _refuse("region", region, "expected a region name like us-east-1")


def check_bucket(bucket: str) -> None:
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or re.fullmatch(r"[\d.]+", bucket):
        raise _refuse("S3 bucket", bucket, "3-63 lowercase letters, digits, '.' or '-'")


def check_version(version: str) -> None:
    """A published version number (never ``$LATEST``: aliases and rollbacks point at versions)."""
    if not _VERSION.fullmatch(version):
        raise _refuse("version", version, "a published version number")


def check_description(text: str) -> None:
    if len(text) > MAX_DESCRIPTION:
        raise _refuse("description", text[:40] + "...", f"at most {MAX_DESCRIPTION} characters")


def check_tags(tags: Mapping[str, str]) -> None:
    if len(tags) > MAX_TAGS:
        raise _refuse("tags", len(tags), f"at most {MAX_TAGS}")
    for key, value in tags.items():
        if not 1 <= len(key) <= MAX_TAG_KEY or key.lower().startswith("aws:"):
            raise _refuse("tag key", key, f"1-{MAX_TAG_KEY} characters, not starting with aws:")
        if len(value) > MAX_TAG_VALUE:
            raise _refuse(f"tag {key}", value, f"at most {MAX_TAG_VALUE} characters")


def check_zip_size(size: int, *, inline: bool, limit: int = DIRECT_UPLOAD_LIMIT, what: str = "zip") -> None:
    """An inline upload must fit ``limit``; larger zips go through S3 (``--bucket``)."""
    if inline and size > limit:
        raise _refuse(what, f"{size} bytes", f"over the {limit}-byte direct upload limit: pass --bucket")


def check_unzipped_size(total: int, *, limit: int = MAX_UNZIPPED_BYTES) -> None:
    if total > limit:
        raise _refuse("function and layers unzipped", f"{total} bytes", f"Lambda allows {limit} bytes")


def check_snapstart(runtime: str) -> None:
    if runtime not in SNAPSTART_RUNTIMES:
        raise _refuse(
            "SnapStart with runtime", runtime, f"SnapStart needs one of {', '.join(SNAPSTART_RUNTIMES)}"
        )
