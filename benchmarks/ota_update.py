"""Bytes a device downloads for a model-only update through a channel, against the full bundle.

Builds the sample's intel-openvino bundle twice (1.0.0, then 1.0.1 with only the model's
weights changed), installs 1.0.0 on a device root, publishes both to a directory channel
served over HTTP on 127.0.0.1, and lets the device agent update: it fetches only the blobs
whose digest the device lacks. Prints the figures as JSON; ``measure_update_bytes()`` is what
``benchmarks/ota.py`` reports.

    .venv/bin/python benchmarks/ota_update.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _python() -> tuple[str, ...]:
    from edgepack.invoke.lambda_base import find_python

    return (str(find_python("python3.12", "x86_64").path),)


def measure_update_bytes(work: Path | None = None) -> dict[str, Any]:
    """Full bundle bytes vs bytes downloaded for a model-only update (1.0.0 -> 1.0.1)."""
    if work is None:
        with tempfile.TemporaryDirectory(prefix="edgepack-ota-update-") as tmp:
            return measure_update_bytes(Path(tmp))
    from click.testing import CliRunner

    from edgepack.cli.main import cli
    from edgepack.runtime.device import installer
    from edgepack.runtime.device.agent import AgentConfig, poll_once
    from edgepack.runtime.trust.public_keys import load_public_keys
    from tests.device.bundles import X86_TARGET, build_bundles, make_project
    from tests.device.channel_helpers import build_model_update, bundle_members
    from tests.device.http_channel import serving

    sample = REPO / "samples" / "digits"
    started = time.monotonic()
    project = make_project(sample, work / "digits-1.0.0", "1.0.0")
    v1 = build_bundles(project, work / "dist-1.0.0", [X86_TARGET])[X86_TARGET]
    v2 = build_model_update(sample, work, "1.0.1", project.path / "keys")
    build_s = time.monotonic() - started

    keys = load_public_keys([project.pub])
    options = installer.InstallOptions(python=_python())
    root = work / "device"
    installer.install_bundle(root, v1, keys, options)
    channel = work / "channel"
    for bundle in (v1, v2):
        result = CliRunner().invoke(
            cli, ["publish", str(bundle), "--channel", str(channel), "--key", str(project.key)]
        )
        if result.exit_code != 0:
            raise RuntimeError(result.output + result.stderr)

    old = {m["sha256"] for m in bundle_members(v1).values()}
    members = bundle_members(v2)
    changed = {path: m["size"] for path, m in members.items() if m["sha256"] not in old}
    with serving(channel) as server:
        started = time.monotonic()
        report = poll_once(
            AgentConfig(channel=server.url, root=root, keys=keys, device_id="bench", options=options)
        )
        update_s = time.monotonic() - started
        wire_bytes = server.body_bytes()
    if report.outcome != "installed":
        raise RuntimeError(report.to_json())
    return {
        "bundle_bytes": v2.stat().st_size,
        "bundle_unpacked_bytes": sum(m["size"] for m in members.values()),
        "bundle_files": len(members),
        "model_bytes": sum(size for path, size in changed.items() if path.startswith("model/")),
        "changed_files": sorted(changed),
        "downloaded_files": len(report.downloaded),
        "downloaded_bytes": report.downloaded_bytes,
        "http_body_bytes": wire_bytes,  # the index included
        "fraction_of_bundle": round(report.downloaded_bytes / v2.stat().st_size, 5),
        "update_s": round(update_s, 2),
        "build_s": round(build_s, 1),
    }


def main() -> int:
    figures = measure_update_bytes()
    print(json.dumps(figures, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
