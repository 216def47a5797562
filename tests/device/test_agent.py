"""The device agent against a channel served over HTTP on 127.0.0.1: a model-only update
downloads only the changed files (resuming an interrupted one), refusals leave the active
version alone, staged rollout decides who updates, and the two CLIs drive the same code."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgepack.runtime.device import installer, rollout
from edgepack.runtime.device.agent import (
    AGENT_STATE,
    CACHE_DIR,
    AgentConfig,
    add_agent_parser,
    poll_once,
)
from edgepack.runtime.device.channel import INDEX_FILE
from edgepack.runtime.manifest import ATTESTATION_FILE
from edgepack.runtime.trust.public_keys import load_public_keys

from .bundles import pack_tree, sign_tree, small_tree
from .channel_helpers import build_model_update, bundle_members, file_digests, publish_cli, read_index
from .conftest import DeviceBundles
from .http_channel import serving

NAME, TARGET = "digits", "intel-openvino"


@pytest.fixture(scope="session")
def model_update(
    device_bundles: DeviceBundles, sample_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """digits 1.0.1 for intel-openvino: the 1.0.0 bundle's project with only its weights changed."""
    work = tmp_path_factory.mktemp("model-update")
    return build_model_update(sample_dir, work, "1.0.1", device_bundles.project.path / "keys")


def _config(channel: str, root: Path, pub: Path, device_id: str = "device-0001", **kw: object) -> AgentConfig:
    return AgentConfig(channel=channel, root=root, keys=load_public_keys([pub]), device_id=device_id, **kw)  # type: ignore[arg-type]


def _active_version(root: Path) -> str | None:
    active = installer.status(root)["active"]
    return None if active is None else str(active["version"])


def test_model_only_update_downloads_only_the_changed_files(
    device_bundles: DeviceBundles, model_update: Path, x86_python: tuple[str, ...], tmp_path: Path
) -> None:
    keys = load_public_keys([device_bundles.pub])
    options = installer.InstallOptions(python=x86_python)
    root = tmp_path / "device"
    installer.install_bundle(root, device_bundles.v1, keys, options)
    assert _active_version(root) == "1.0.0"

    channel = tmp_path / "channel"
    for bundle in (device_bundles.v1, model_update):
        assert publish_cli(bundle, "--channel", channel, "--key", device_bundles.key).exit_code == 0

    old, new = file_digests(device_bundles.v1), file_digests(model_update)
    changed = {path for path, sha in new.items() if sha not in set(old.values())}
    assert any(p.startswith("model/") for p in changed), changed
    assert not any(p.startswith(("numpy", "openvino")) for p in changed), changed  # the runtime is reused
    attestation = bundle_members(model_update)[ATTESTATION_FILE]
    expected = {new[p] for p in changed} | {attestation["sha256"]}
    sizes = {m["sha256"]: m["size"] for m in bundle_members(model_update).values()}
    model_bytes = sum(sizes[new[p]] for p in changed if p.startswith("model/"))
    biggest = max(expected, key=lambda sha: sizes[sha])

    with serving(channel) as server:
        server.cut_after[f"/blobs/sha256/{biggest}"] = sizes[biggest] // 2  # the connection drops mid-way
        report = poll_once(_config(server.url, root, device_bundles.pub, options=options))
        assert (report.outcome, report.via) == ("installed", "files"), report
        blob_requests = [r for r in server.log if r.path.startswith("/blobs/")]
        assert {r.path.rsplit("/", 1)[1] for r in blob_requests} == expected
        assert [r.range for r in server.requests_for(biggest)] == [None, f"bytes={sizes[biggest] // 2}-"]
        assert not server.requests_for(".bundle.tar.gz")  # never the whole bundle

    assert _active_version(root) == "1.0.1"
    assert set(report.downloaded) == expected
    assert report.downloaded_bytes == sum(sizes[s] for s in expected)
    assert report.resumed == 1
    # About the model's bytes (plus the manifest, attestation and sample), far below the bundle's.
    assert model_bytes <= report.downloaded_bytes <= model_bytes + (256 << 10)
    unpacked = sum(m["size"] for m in bundle_members(model_update).values())
    assert report.downloaded_bytes * 50 < min(unpacked, model_update.stat().st_size)
    assert report.reused == len(set(new.values()) | {attestation["sha256"]}) - len(expected)
    assert not any((root / CACHE_DIR).iterdir())  # the cache is emptied once the slot holds the files

    with serving(channel) as server:
        again = poll_once(_config(server.url, root, device_bundles.pub, options=options))
        assert again.outcome == "up-to-date"
        assert [r.path for r in server.log] == [f"/{INDEX_FILE}"]


@pytest.fixture
def small_channel(
    device_bundles: DeviceBundles, small_bundle: Callable[..., Path], tmp_path: Path
) -> Callable[..., Path]:
    """publish(version, rollout="100"): the small (package-free) bundle of ``version`` on a channel."""
    channel = tmp_path / "channel"

    def publish(version: str, percent: str = "100", bundle: Path | None = None) -> Path:
        result = publish_cli(
            bundle or small_bundle(version),
            "--channel",
            channel,
            "--key",
            device_bundles.key,
            "--rollout",
            percent,
        )
        assert result.exit_code == 0, result.stderr
        return channel

    return publish


def test_a_fresh_device_downloads_the_compressed_bundle_not_its_files(
    device_bundles: DeviceBundles, x86_python: tuple[str, ...], tmp_path: Path
) -> None:
    # A first install lacks every file: the bundle (gzip) is far fewer bytes than the files.
    channel = tmp_path / "channel"
    assert publish_cli(device_bundles.v1, "--channel", channel, "--key", device_bundles.key).exit_code == 0
    options = installer.InstallOptions(python=x86_python)
    root = tmp_path / "device"
    with serving(channel) as server:
        report = poll_once(_config(server.url, root, device_bundles.pub, options=options))
        assert (report.outcome, report.via) == ("installed", "bundle"), report
        assert not [r for r in server.log if r.path.startswith("/blobs/")]
    size = device_bundles.v1.stat().st_size
    assert report.downloaded_bytes == size
    assert size < sum(m["size"] for m in bundle_members(device_bundles.v1).values())
    assert _active_version(root) == "1.0.0"
    assert not any((root / CACHE_DIR).iterdir())


def test_a_fresh_device_installs_from_a_directory_channel(
    device_bundles: DeviceBundles, small_channel: Callable[..., Path], tmp_path: Path
) -> None:
    channel = small_channel("1.0.0")
    root = tmp_path / "device"
    report = poll_once(_config(str(channel), root, device_bundles.pub))
    assert (report.outcome, report.version, report.installed) == ("installed", "1.0.0", None)
    assert _active_version(root) == "1.0.0"
    # file:// names the same channel.
    small_channel("1.1.0")
    assert poll_once(_config(channel.as_uri(), root, device_bundles.pub)).version == "1.1.0"
    assert _active_version(root) == "1.1.0"


def test_a_corrupted_blob_is_refused_and_the_active_version_kept(
    device_bundles: DeviceBundles, small_channel: Callable[..., Path], tmp_path: Path
) -> None:
    channel = small_channel("1.0.0")
    root = tmp_path / "device"
    assert poll_once(_config(str(channel), root, device_bundles.pub)).outcome == "installed"
    small_channel("1.1.0")
    entry = next(e for e in read_index(channel, device_bundles.pub).entries if e.version == "1.1.0")
    with serving(channel) as server:
        server.replace[f"/blobs/sha256/{entry.attestation.sha256}"] = b"x" * entry.attestation.size
        report = poll_once(_config(server.url, root, device_bundles.pub))
        assert (report.outcome, report.exit_code) == ("refused", 4)
        assert "not the" in report.reason
        assert _active_version(root) == "1.0.0"
        assert not list((root / CACHE_DIR).iterdir())
        # Once the channel serves the right bytes, the next poll installs it.
        server.replace.clear()
        assert poll_once(_config(server.url, root, device_bundles.pub)).outcome == "installed"
    assert _active_version(root) == "1.1.0"


def test_a_tampered_or_replayed_index_installs_nothing(
    device_bundles: DeviceBundles, small_channel: Callable[..., Path], tmp_path: Path
) -> None:
    channel = small_channel("1.0.0")
    root = tmp_path / "device"
    assert poll_once(_config(str(channel), root, device_bundles.pub)).outcome == "installed"
    old_index = (channel / INDEX_FILE).read_bytes()
    small_channel("1.1.0")
    envelope = json.loads((channel / INDEX_FILE).read_text())
    signed = envelope["signatures"][0]["sig"]
    envelope["signatures"][0]["sig"] = ("A" if signed[0] != "A" else "B") + signed[1:]
    (channel / INDEX_FILE).write_text(json.dumps(envelope))
    report = poll_once(_config(str(channel), root, device_bundles.pub))
    assert (report.outcome, report.exit_code, report.downloaded) == ("refused", 4, [])

    (channel / INDEX_FILE).write_bytes(old_index)  # sequence 1: the highest the device accepted so far
    assert poll_once(_config(str(channel), root, device_bundles.pub)).outcome == "up-to-date"
    small_channel("1.2.0")  # publish builds on the index it finds: sequence 2 again, now with 1.2.0
    assert poll_once(_config(str(channel), root, device_bundles.pub)).version == "1.2.0"
    (channel / INDEX_FILE).write_bytes(old_index)
    replayed = poll_once(_config(str(channel), root, device_bundles.pub))
    assert (replayed.outcome, replayed.exit_code) == ("refused", 4)
    assert "replayed or frozen" in replayed.reason


def test_an_index_by_an_untrusted_key_installs_nothing(
    device_bundles: DeviceBundles, small_channel: Callable[..., Path], tmp_path: Path
) -> None:
    from edgepack.signing.keys import generate_keypair

    channel = small_channel("1.0.0")
    _, other_pub = generate_keypair(tmp_path / "other")
    report = poll_once(_config(str(channel), tmp_path / "device", other_pub))
    assert (report.outcome, report.exit_code) == ("refused", 4)
    assert "no signature by a trusted key" in report.reason
    assert _active_version(tmp_path / "device") is None


def test_staged_rollout_decides_which_device_updates(
    device_bundles: DeviceBundles, small_channel: Callable[..., Path], tmp_path: Path
) -> None:
    ids = [f"device-{i:04d}" for i in range(200)]
    early = next(d for d in ids if rollout.bucket(d, NAME, "1.1.0") < 500)
    late = next(d for d in ids if rollout.bucket(d, NAME, "1.1.0") >= 5000)
    channel = small_channel("1.0.0")
    roots = {d: tmp_path / d for d in (early, late)}
    for device, root in roots.items():
        assert poll_once(_config(str(channel), root, device_bundles.pub, device)).outcome == "installed"
    small_channel("1.1.0", "5")
    assert poll_once(_config(str(channel), roots[early], device_bundles.pub, early)).version == "1.1.0"
    assert poll_once(_config(str(channel), roots[late], device_bundles.pub, late)).outcome == "not-eligible"
    small_channel("1.1.0", "100")
    assert poll_once(_config(str(channel), roots[late], device_bundles.pub, late)).outcome == "installed"
    assert {_active_version(r) for r in roots.values()} == {"1.1.0"}


def test_a_release_that_fails_its_install_is_not_retried(
    device_bundles: DeviceBundles, small_channel: Callable[..., Path], tmp_path: Path
) -> None:
    channel = small_channel("1.0.0")
    root = tmp_path / "device"
    assert poll_once(_config(str(channel), root, device_bundles.pub)).outcome == "installed"
    tree = small_tree(device_bundles.v1, tmp_path / "sick", version="1.1.0")
    (tree / "predict.py").write_text("import sys\nsys.exit(3)\n")
    sign_tree(tree, device_bundles.key)
    small_channel("1.1.0", bundle=pack_tree(tree, tmp_path / "digits-1.1.0-sick.bundle.tar.gz"))
    report = poll_once(_config(str(channel), root, device_bundles.pub))
    assert (report.outcome, report.exit_code) == ("failed", 4), report
    assert "health check" in report.reason
    assert _active_version(root) == "1.0.0"
    assert json.loads((root / AGENT_STATE).read_text())["failed"]
    again = poll_once(_config(str(channel), root, device_bundles.pub))
    assert (again.outcome, again.downloaded) == ("not-eligible", [])


def test_a_fresh_device_needs_a_name_when_the_channel_offers_several(
    device_bundles: DeviceBundles,
    small_bundle: Callable[..., Path],
    small_channel: Callable[..., Path],
    tmp_path: Path,
) -> None:
    small_channel("1.0.0")
    channel = small_channel("1.0.0", bundle=small_bundle("1.0.0", name="other"))
    report = poll_once(_config(str(channel), tmp_path / "a", device_bundles.pub))
    assert (report.outcome, report.exit_code) == ("error", 2)
    assert "--name and --target" in report.reason
    named = poll_once(_config(str(channel), tmp_path / "b", device_bundles.pub, name="other", target=TARGET))
    assert (named.outcome, named.version) == ("installed", "1.0.0")


def test_runtime_cli_and_click_command_run_the_agent(
    device_bundles: DeviceBundles, small_channel: Callable[..., Path], tmp_path: Path
) -> None:
    from edgepack.cli.device_agent_cmd import agent
    from edgepack.cli.main import _Group

    channel = small_channel("1.0.0")
    parser = argparse.ArgumentParser(prog="edgepack-device")
    add_agent_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "agent",
            "--channel",
            str(channel),
            "--root",
            str(tmp_path / "a"),
            "--trust",
            str(device_bundles.pub),
            "--device-id",
            "x1",
            "--once",
        ]
    )
    assert args.handler(args) == 0
    assert _active_version(tmp_path / "a") == "1.0.0"

    group = _Group(commands={"agent": agent})  # the CLI's error boundary, as `edgepack device` has it
    runner = CliRunner()
    base = ["agent", "--channel", str(channel), "--trust", str(device_bundles.pub), "--once"]
    ok = runner.invoke(group, [*base, "--root", str(tmp_path / "b")])
    assert ok.exit_code == 0, ok.output
    line = json.loads(ok.output.strip().splitlines()[-1])
    assert (line["outcome"], line["version"]) == ("installed", "1.0.0")
    assert (tmp_path / "b" / "device-id").read_text().strip()  # an id was chosen and kept

    private = runner.invoke(
        group, [*base, "--root", str(tmp_path / "c"), "--trust", str(device_bundles.other_key)]
    )
    assert private.exit_code == 2, private.output  # a private key given as a trusted key is bad input
    assert "private key" in private.stderr
    bad = runner.invoke(
        group, ["agent", "--channel", "ftp://x", "--trust", str(device_bundles.pub), "--root", str(tmp_path)]
    )
    assert bad.exit_code == 2
    assert bad.stderr.count("\n") == 1 and "ftp://x" in bad.stderr


def test_report_is_one_json_line(
    device_bundles: DeviceBundles, small_channel: Callable[..., Path], tmp_path: Path
) -> None:
    channel = small_channel("1.0.0")
    report = poll_once(_config(str(channel), tmp_path / "d", device_bundles.pub))
    line = report.to_json()
    assert "\n" not in line
    assert json.loads(line)["outcome"] == "installed"


def test_each_poll_report_lands_in_the_agent_spool(
    device_bundles: DeviceBundles, small_channel: Callable[..., Path], tmp_path: Path
) -> None:
    from edgepack.runtime.device.agent import run
    from edgepack.runtime.device.spool import Spool

    channel = small_channel("1.0.0")
    spool_dir = tmp_path / "spool"
    config = _config(str(channel), tmp_path / "e", device_bundles.pub, spool=spool_dir)
    assert run(config, once=True, interval_s=1.0, out=lambda line: None) == 0
    assert run(config, once=True, interval_s=1.0, out=lambda line: None) == 0
    events: list[dict[str, object]] = []
    with Spool(spool_dir) as spool:
        spool.drain(events.extend)
    assert [(e["event"], e["outcome"], e["version"]) for e in events] == [
        ("ota", "installed", "1.0.0"),
        ("ota", "up-to-date", None),
    ]
    assert all(e["device_id"] == config.device_id for e in events)
