"""How a zip's bytes reach Lambda: through S3 (``S3Bucket``/``S3Key``, the bucket created when
missing) when ``--bucket`` is given or the zip is over the direct-upload limit, else inline
(``ZipFile``, base64 in the JSON request: 4/3 of the zip's size on the wire).

S3 keys are content-addressed (``edgepack/<name>/<sha256>.zip``), so an object already
there with the same digest is not sent again. ``Code.uploaded`` counts the bytes that
left this machine for the code (0 when reused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .artifact import VerifiedZip
from .aws import Aws
from .checks import DIRECT_UPLOAD_LIMIT, check_bucket, check_zip_size
from .errors import DeployRequestError


@dataclass(frozen=True)
class Code:
    """The ``Code``/``Content`` parameters for Lambda, and what it took to get them there."""

    params: dict[str, Any]
    uploaded: int
    via: str  # "inline" | "s3" | "s3 (already there)"


def needs_s3(zip_: VerifiedZip, limit: int = DIRECT_UPLOAD_LIMIT) -> bool:
    return zip_.size > limit


def check_code_route(zip_: VerifiedZip, bucket: str | None, limit: int = DIRECT_UPLOAD_LIMIT) -> None:
    """Before any call: a zip over ``limit`` needs a bucket; a bucket name must be valid."""
    if bucket is not None:
        check_bucket(bucket)
    if needs_s3(zip_, limit) and bucket is None:
        check_zip_size(zip_.size, inline=True, limit=limit, what=zip_.path.name)


def s3_key(zip_: VerifiedZip) -> str:
    return f"edgepack/{zip_.name or 'artifact'}/{zip_.sha256}.zip"


def ensure_bucket(aws: Aws, bucket: str) -> bool:
    """Create ``bucket`` in the deploy's region when it does not exist; True when created."""
    if aws.call("s3", "HeadBucket", Bucket=bucket, missing_ok=True) is not None:
        return False
    params: dict[str, Any] = {"Bucket": bucket}
    if aws.region != "us-east-1":  # us-east-1 refuses an explicit LocationConstraint
        params["CreateBucketConfiguration"] = {"LocationConstraint": aws.region}
    aws.call("s3", "CreateBucket", **params)
    return True


def stage_code(aws: Aws, zip_: VerifiedZip, bucket: str | None, *, limit: int = DIRECT_UPLOAD_LIMIT) -> Code:
    """Through S3 when a bucket is given (raw bytes: an inline zip travels base64 in JSON, a
    third larger; and an object already there is not sent again) or the zip is over ``limit``;
    else inline."""
    if bucket is None and not needs_s3(zip_, limit):
        data = zip_.read_bytes()
        return Code({"ZipFile": data}, len(data), "inline")
    if bucket is None:
        raise DeployRequestError(f"{zip_.path.name}: {zip_.size} bytes is over {limit}: pass --bucket")
    ensure_bucket(aws, bucket)
    key = s3_key(zip_)
    head = aws.call("s3", "HeadObject", Bucket=bucket, Key=key, missing_ok=True)
    if (
        head is not None
        and head.get("ContentLength") == zip_.size
        and (head.get("Metadata", {}).get("sha256") == zip_.sha256)
    ):
        return Code({"S3Bucket": bucket, "S3Key": key}, 0, "s3 (already there)")
    data = zip_.read_bytes()
    aws.call(
        "s3",
        "PutObject",
        Bucket=bucket,
        Key=key,
        Body=data,
        ContentType="application/zip",
        Metadata={"sha256": zip_.sha256},
    )
    return Code({"S3Bucket": bucket, "S3Key": key}, len(data), "s3")
