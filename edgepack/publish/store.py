"""Where a channel lives: a local directory or an S3 prefix, behind the few operations publish needs.

Every write is whole or absent: a directory store writes a temporary sibling, fsyncs it and
renames it into place; an S3 PUT is atomic per object.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from pathlib import Path
from typing import Any, Protocol

from ..errors import BadInputError
from ..runtime.device.fsutil import atomic_write_with

# S3 presigned URLs live at most seven days (SigV4).
MAX_PRESIGN_S = 7 * 24 * 3600


class ChannelLocationError(BadInputError):
    """The --channel value is not a directory path or an s3://bucket/prefix URL (exit 2)."""


class Store(Protocol):
    location: str

    def has(self, key: str, size: int) -> bool: ...

    def put_file(self, key: str, source: Path) -> None: ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes | None: ...

    def url_for(self, key: str, expires_s: int) -> str | None: ...


class DirStore:
    """A channel in a local directory (serve it over HTTP, or point devices at it directly)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def has(self, key: str, size: int) -> bool:
        path = self._path(key)
        return path.is_file() and path.stat().st_size == size

    def _replace(self, key: str, write: Any) -> None:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_with(final, write)

    def put_file(self, key: str, source: Path) -> None:
        def write(f: Any) -> None:
            with open(source, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)

        self._replace(key, write)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._replace(key, lambda f: f.write(data))

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def url_for(self, key: str, expires_s: int) -> str | None:
        return None


class S3Store:
    """A channel under ``s3://bucket/prefix`` (boto3's usual credentials and AWS_ENDPOINT_URL)."""

    def __init__(self, bucket: str, prefix: str, aws: Any = None) -> None:
        from ..deploy.aws import Aws

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.aws = aws if aws is not None else Aws(os.environ.get("AWS_REGION") or None)
        self._presigner: Any = None

    def key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def check(self) -> None:
        """Refuse before anything is written when the bucket is not there or not ours to read."""
        self.aws.check_credentials()
        if self.aws.call("s3", "HeadBucket", missing_ok=True, Bucket=self.bucket) is None:
            raise ChannelLocationError(f"bucket {self.bucket} does not exist", where=self.location)

    def has(self, key: str, size: int) -> bool:
        head = self.aws.call("s3", "HeadObject", missing_ok=True, Bucket=self.bucket, Key=self.key(key))
        return head is not None and int(head.get("ContentLength", -1)) == size

    def put_file(self, key: str, source: Path) -> None:
        with open(source, "rb") as f:
            self.aws.call("s3", "PutObject", Bucket=self.bucket, Key=self.key(key), Body=f)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.aws.call(
            "s3",
            "PutObject",
            Bucket=self.bucket,
            Key=self.key(key),
            Body=data,
            ContentType="application/json",
        )

    def get_bytes(self, key: str) -> bytes | None:
        answer = self.aws.call("s3", "GetObject", missing_ok=True, Bucket=self.bucket, Key=self.key(key))
        return None if answer is None else bytes(answer["Body"].read())

    def url_for(self, key: str, expires_s: int) -> str | None:
        if self._presigner is None:
            from botocore.config import Config

            # SigV4 (what every region accepts); presigning is local, no request is sent.
            self._presigner = self.aws.session.client(
                "s3",
                region_name=self.aws.region,
                endpoint_url=self.aws.endpoint_url,
                config=Config(signature_version="s3v4"),
            )
        return str(
            self._presigner.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self.key(key)},
                ExpiresIn=min(expires_s, MAX_PRESIGN_S),
            )
        )


def open_store(channel: str) -> DirStore | S3Store:
    """The store a --channel value names: ``s3://bucket[/prefix]`` or a local directory."""
    parts = urllib.parse.urlsplit(channel)
    if parts.scheme == "s3":
        if not parts.netloc or parts.query or parts.fragment:
            raise ChannelLocationError("expected s3://bucket/prefix", where=channel)
        store = S3Store(parts.netloc, urllib.parse.unquote(parts.path))
        store.check()
        return store
    if parts.scheme == "file":
        channel = urllib.parse.unquote(parts.path)
    elif parts.scheme:
        raise ChannelLocationError("a channel is a directory or an s3://bucket/prefix URL", where=channel)
    if not channel:
        raise ChannelLocationError("the channel location is empty")
    root = Path(channel)
    if root.exists() and not root.is_dir():
        raise ChannelLocationError("exists and is not a directory", where=channel)
    return DirStore(root)
