"""``edgepack publish`` to a directory channel: blobs by content, the signed index written last,
republishing for staged rollouts, and every bad input refused with nothing written."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from edgepack.runtime.device.channel import INDEX_FILE
from edgepack.runtime.manifest import ATTESTATION_FILE

from .channel_helpers import (
    bundle_members,
    fleet_share,
    one_line_error,
    publish_cli,
    read_index,
    snapshot,
)
from .conftest import DeviceBundles


def test_publish_writes_blobs_bundle_and_a_signed_index(
    device_bundles: DeviceBundles, small_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    bundle = small_bundle("1.0.0")
    channel = tmp_path / "channel"
    result = publish_cli(bundle, "--channel", channel, "--key", device_bundles.key, "--rollout", "25")
    assert result.exit_code == 0, result.output + result.stderr
    assert "published digits 1.0.0 for intel-openvino at 25%" in result.output

    index = read_index(channel, device_bundles.pub)
    assert index.sequence == 1
    (entry,) = index.entries
    assert (entry.name, entry.version, entry.target, entry.rollout_percent) == (
        "digits",
        "1.0.0",
        "intel-openvino",
        25,
    )
    members = bundle_members(bundle)
    attestation = members.pop(ATTESTATION_FILE)
    assert {f.path: {"sha256": f.sha256, "size": f.size, "mode": f.mode} for f in entry.files} == members
    assert entry.attestation.sha256 == attestation["sha256"]
    assert entry.bundle.path == f"bundles/{bundle.name}"
    assert (channel / entry.bundle.path).read_bytes() == bundle.read_bytes()
    for blob in (*entry.files, entry.attestation):
        stored = channel / "blobs" / "sha256" / blob.sha256
        assert stored.stat().st_size == blob.size
    assert not [p for p in channel.rglob(".*") if p.is_file()]  # no temporaries left behind
    assert (
        json.loads((channel / INDEX_FILE).read_text())["payloadType"]
        == "application/vnd.edgepack.channel+json"
    )


def test_republishing_updates_the_rollout_and_adds_versions(
    device_bundles: DeviceBundles, small_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    channel = tmp_path / "channel"
    key = device_bundles.key
    assert publish_cli(small_bundle("1.0.0"), "--channel", channel, "--key", key).exit_code == 0
    assert (
        publish_cli(small_bundle("1.1.0"), "--channel", channel, "--key", key, "--rollout", "5").exit_code
        == 0
    )
    blobs_before = snapshot(channel / "blobs")
    again = publish_cli(small_bundle("1.1.0"), "--channel", channel, "--key", key, "--rollout", "50")
    assert again.exit_code == 0, again.stderr
    assert "0 new blobs" in again.output
    assert snapshot(channel / "blobs") == blobs_before

    index = read_index(channel, device_bundles.pub)
    assert index.sequence == 3
    assert [(e.version, e.rollout_percent) for e in index.entries] == [("1.0.0", 100), ("1.1.0", 50)]


def test_staged_rollout_reaches_5_then_50_then_100_percent_of_a_fleet(
    device_bundles: DeviceBundles, small_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    channel = tmp_path / "channel"
    key = device_bundles.key
    fleet = [f"rpi-{i:04d}" for i in range(1000)]
    assert publish_cli(small_bundle("1.0.0"), "--channel", channel, "--key", key).exit_code == 0
    shares = {}
    for percent in ("5", "50", "100"):
        result = publish_cli(small_bundle("1.1.0"), "--channel", channel, "--key", key, "--rollout", percent)
        assert result.exit_code == 0, result.stderr
        index = read_index(channel, device_bundles.pub)
        shares[percent] = fleet_share(index, fleet, name="digits", target="intel-openvino", version="1.1.0")
    assert 25 <= len(shares["5"]) <= 80
    assert 420 <= len(shares["50"]) <= 580
    assert len(shares["100"]) == 1000
    assert shares["5"] <= shares["50"] <= shares["100"]  # a device in at 5 % stays in


def test_the_same_version_with_other_content_is_refused(
    device_bundles: DeviceBundles, small_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    channel = tmp_path / "channel"
    assert (
        publish_cli(small_bundle("1.0.0"), "--channel", channel, "--key", device_bundles.key).exit_code == 0
    )
    before = snapshot(channel)
    other = small_bundle("1.0.0", padding=1)  # same name and version, other files
    result = publish_cli(other, "--channel", channel, "--key", device_bundles.key)
    one_line_error(result, 2, "already on the channel with other content")
    assert snapshot(channel) == before


def test_a_channel_signed_by_another_key_is_not_overwritten(
    device_bundles: DeviceBundles, small_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    channel = tmp_path / "channel"
    assert (
        publish_cli(small_bundle("1.0.0"), "--channel", channel, "--key", device_bundles.key).exit_code == 0
    )
    before = snapshot(channel)
    result = publish_cli(
        small_bundle("1.0.0"),
        "--channel",
        channel,
        "--key",
        device_bundles.other_key,
        "--trust",
        device_bundles.pub,
    )
    one_line_error(result, 4, INDEX_FILE, "no signature by a trusted key")
    assert snapshot(channel) == before


def _tampered(bundle: Path, dest: Path) -> Path:
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0x01
    dest.write_bytes(bytes(data))
    return dest


@pytest.mark.parametrize(
    ("case", "code", "needle"),
    [
        ("missing bundle", 2, "no such bundle"),
        ("not a bundle", 2, "not a device bundle"),
        ("tampered bundle", 4, ""),
        ("bundle by another key", 4, "no signature by a trusted key"),
        ("rollout 150", 2, "from 0 to 100"),
        ("rollout -1", 2, "from 0 to 100"),
        ("rollout abc", 2, "not a number"),
        ("ftp channel", 2, "directory or an s3://bucket/prefix"),
        ("s3 without bucket", 2, "s3://bucket/prefix"),
        ("channel is a file", 2, "not a directory"),
        ("no key", 2, "--key"),
        ("key and project", 2, "--key"),
        ("unreadable key", 2, "signing key file not found"),
        ("bad thing group", 2, "thing group"),
        ("second bundle missing", 2, "no such bundle"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    device_bundles: DeviceBundles,
    small_bundle: Callable[..., Path],
    tmp_path: Path,
    case: str,
    code: int,
    needle: str,
) -> None:
    good = small_bundle("1.0.0")
    channel = tmp_path / "channel"
    assert publish_cli(good, "--channel", channel, "--key", device_bundles.key).exit_code == 0
    before = snapshot(channel)
    key: list[str | Path] = ["--key", device_bundles.key]
    bundles: list[str | Path] = [good]
    where: str | Path = channel
    extra: list[str | Path] = []
    if case == "missing bundle":
        bundles = [tmp_path / "nope.bundle.tar.gz"]
    elif case == "not a bundle":
        bundles = [shutil.copy(good, tmp_path / "digits.zip")]
    elif case == "tampered bundle":
        bundles = [_tampered(good, tmp_path / good.name)]
    elif case == "bundle by another key":
        key = ["--key", device_bundles.other_key]
        where = tmp_path / "fresh"
    elif case.startswith("rollout"):
        extra = ["--rollout", case.split()[1]]
    elif case == "ftp channel":
        where = "ftp://host/channel"
    elif case == "s3 without bucket":
        where = "s3:///prefix"
    elif case == "channel is a file":
        where = good
    elif case == "no key":
        key = []
    elif case == "key and project":
        key = ["--key", device_bundles.key, "--project", device_bundles.project.path]
    elif case == "unreadable key":
        key = ["--key", tmp_path / "missing.key"]
    elif case == "bad thing group":
        extra = ["--iot-job", "no spaces allowed"]
    elif case == "second bundle missing":
        bundles = [small_bundle("1.1.0"), tmp_path / "nope.bundle.tar.gz"]
    result = publish_cli(*bundles, "--channel", where, *key, *extra)
    one_line_error(result, code, needle)
    assert snapshot(channel) == before
    assert not (tmp_path / "fresh").exists()


def test_publish_signs_with_the_project_signing_key(
    device_bundles: DeviceBundles, small_bundle: Callable[..., Path], tmp_path: Path
) -> None:
    channel = tmp_path / "channel"
    result = publish_cli(
        small_bundle("1.0.0"), "--channel", channel, "--project", device_bundles.project.path
    )
    assert result.exit_code == 0, result.stderr
    assert read_index(channel, device_bundles.pub).sequence == 1


def test_several_bundles_in_one_publish(device_bundles: DeviceBundles, tmp_path: Path) -> None:
    """The real x86_64 and aarch64 bundles side by side: one entry per target, blobs shared."""
    channel = tmp_path / "channel"
    result = publish_cli(
        device_bundles.v1, device_bundles.arm, "--channel", channel, "--key", device_bundles.key
    )
    assert result.exit_code == 0, result.stderr
    index = read_index(channel, device_bundles.pub)
    assert sorted(e.target for e in index.entries) == ["intel-openvino", "rpi-tflite"]
    digests = {f.sha256 for e in index.entries for f in e.files} | {
        e.attestation.sha256 for e in index.entries
    }
    assert {p.name for p in (channel / "blobs" / "sha256").iterdir()} == digests
