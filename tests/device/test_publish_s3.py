"""S3 channels and AWS IoT jobs against moto's server over HTTP: publish to s3://bucket/prefix,
a device installs through the presigned URLs in the index (no AWS credentials on the
device) or through boto3, and --iot-job creates a job whose document points at the release."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgepack.runtime.device import installer
from edgepack.runtime.device.agent import AgentConfig, poll_once
from edgepack.runtime.device.channel import INDEX_FILE, open_index
from edgepack.runtime.trust.public_keys import load_public_keys

from .channel_helpers import one_line_error, publish_cli
from .conftest import DeviceBundles

BUCKET = "fleet-channel"
PREFIX = "digits/stable"
CHANNEL = f"s3://{BUCKET}/{PREFIX}"


@pytest.fixture
def channel_bucket(aws_env: str) -> str:
    """A fresh moto state, boto3 pointed at it (and at nothing else), the channel's bucket made."""
    boto("s3").create_bucket(Bucket=BUCKET)
    return aws_env


def boto(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name="us-east-1")


def _keys_in_bucket() -> list[str]:
    listing = boto("s3").list_objects_v2(Bucket=BUCKET)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def _index_bytes() -> bytes:
    return bytes(boto("s3").get_object(Bucket=BUCKET, Key=f"{PREFIX}/{INDEX_FILE}")["Body"].read())


def test_publish_to_s3_and_install_through_presigned_urls(
    channel_bucket: str,
    device_bundles: DeviceBundles,
    small_bundle: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bundle = small_bundle("1.0.0")
    result = publish_cli(bundle, "--channel", CHANNEL, "--key", device_bundles.key)
    assert result.exit_code == 0, result.stderr
    index_bytes = _index_bytes()
    index = open_index(index_bytes, load_public_keys([device_bundles.pub]))
    (entry,) = index.entries
    stored = set(_keys_in_bucket())
    assert f"{PREFIX}/{INDEX_FILE}" in stored
    assert f"{PREFIX}/bundles/{bundle.name}" in stored
    assert {f"{PREFIX}/blobs/sha256/{f.sha256}" for f in entry.files} <= stored
    assert all(f.url and "X-Amz-Signature" in f.url for f in (*entry.files, entry.attestation, entry.bundle))

    # The device: no AWS credentials, only the channel's presigned index URL.
    from edgepack.runtime.device.download import fetch_bytes

    (line,) = [x for x in result.output.splitlines() if x.startswith("index URL for devices")]
    presigned_index = line.rsplit(": ", 1)[1]
    assert "X-Amz-Signature" in presigned_index
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")
    aws = {name: os.environ[name] for name in names}
    for name in aws:
        monkeypatch.delenv(name)
    assert fetch_bytes(presigned_index, 1 << 20) == index_bytes
    root = tmp_path / "device"
    config = AgentConfig(
        channel=presigned_index, root=root, keys=load_public_keys([device_bundles.pub]), device_id="s3-device"
    )
    report = poll_once(config)
    # A first install: the compressed bundle, through its presigned URL.
    assert (report.outcome, report.version, report.via) == ("installed", "1.0.0", "bundle"), report
    assert installer.status(root)["active"]["version"] == "1.0.0"
    assert report.downloaded == [entry.bundle.sha256]

    # An update: only the changed files, through their presigned URLs.
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    published = publish_cli(small_bundle("1.1.0"), "--channel", CHANNEL, "--key", device_bundles.key)
    assert published.exit_code == 0, published.stderr
    newer = next(e for e in open_index(_index_bytes(), load_public_keys([device_bundles.pub])).entries
                 if e.version == "1.1.0")  # fmt: skip
    for name in aws:
        monkeypatch.delenv(name)
    update = poll_once(config)
    assert (update.outcome, update.version, update.via) == ("installed", "1.1.0", "files"), update
    old_files = {f.sha256 for f in entry.files}
    assert set(update.downloaded) == {f.sha256 for f in newer.files if f.sha256 not in old_files} | {
        newer.attestation.sha256
    }


def test_an_s3_channel_read_through_boto3(
    channel_bucket: str, device_bundles: DeviceBundles, small_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    assert (
        publish_cli(small_bundle("1.0.0"), "--channel", CHANNEL, "--key", device_bundles.key).exit_code == 0
    )
    assert (
        publish_cli(small_bundle("1.1.0"), "--channel", CHANNEL, "--key", device_bundles.key).exit_code == 0
    )
    root = tmp_path / "device"
    keys = load_public_keys([device_bundles.pub])
    report = poll_once(AgentConfig(channel=CHANNEL, root=root, keys=keys, device_id="d1"))
    assert (report.outcome, report.version) == ("installed", "1.1.0"), report


def test_iot_job_points_at_the_release(
    channel_bucket: str, device_bundles: DeviceBundles, small_bundle: Callable[..., Path]
) -> None:
    iot = boto("iot")
    group_arn = iot.create_thing_group(thingGroupName="digits-fleet")["thingGroupArn"]
    result = publish_cli(
        small_bundle("1.0.0"),
        "--channel",
        CHANNEL,
        "--key",
        device_bundles.key,
        "--iot-job",
        "digits-fleet",
        "--rollout",
        "5",
    )
    assert result.exit_code == 0, result.stderr
    job_id = "edgepack-digits-1_0_0-intel-openvino-1"
    assert "IoT job arn:aws:iot:us-east-1:" in result.output and job_id in result.output
    job = iot.describe_job(jobId=job_id)["job"]
    assert job["targets"] == [group_arn]
    document = json.loads(iot.get_job_document(jobId=job_id)["document"])
    index = open_index(_index_bytes(), load_public_keys([device_bundles.pub]))
    (entry,) = index.entries
    assert document["operation"] == "edgepack.install"
    assert (document["name"], document["version"], document["target"]) == (
        "digits",
        "1.0.0",
        "intel-openvino",
    )
    assert (document["sequence"], document["rollout_percent"], document["channel"]) == (1, 5, CHANNEL)
    assert document["bundle"]["sha256"] == entry.bundle.sha256
    assert (
        "X-Amz-Signature" in document["bundle"]["url"] and f"{PREFIX}/bundles/" in document["bundle"]["url"]
    )
    assert f"{PREFIX}/{INDEX_FILE}" in document["index"]
    with urllib.request.urlopen(document["bundle"]["url"]) as answer:  # the presigned URL serves the bundle
        assert answer.read() == small_bundle("1.0.0").read_bytes()


def test_missing_thing_group_or_bucket_writes_nothing(
    channel_bucket: str, device_bundles: DeviceBundles, small_bundle: Callable[..., Path]
) -> None:
    result = publish_cli(
        small_bundle("1.0.0"), "--channel", CHANNEL, "--key", device_bundles.key, "--iot-job", "ghosts"
    )
    one_line_error(result, 2, "thing group ghosts does not exist")
    assert _keys_in_bucket() == []
    result = publish_cli(
        small_bundle("1.0.0"), "--channel", "s3://no-such-bucket/x", "--key", device_bundles.key
    )
    one_line_error(result, 2, "bucket no-such-bucket does not exist")
