#!/usr/bin/env python
"""Benchmark: the device installer (OTA) against a plain extract, and the kill -9 campaign.

Measured in one run, on the sample digits project's ``intel-openvino`` bundle (x86_64,
built here with a fresh key unless ``--bundle``/``--trust`` name one; its health check
runs natively under CPython 3.12):

1. install time: ``install_bundle`` into a fresh root (verify the signature, extract with
   the trust reader, verify the tree again on disk, health check, switch) against a plain
   ``tarfile`` ``extractall(filter="data")`` of the same bundle; median of ``--repeat`` runs,
   with the installer's steps timed separately (verify + extract, re-verify, health check);
2. the kill campaign: ``--points`` (default 200) runs of ``python -m
   edgepack.runtime.device install``, its process group SIGKILLed at a moment drawn
   uniformly (seeded) within the installer's measured duration, each followed by a check
   that the active version is complete and verifies, and by an install that must succeed.
   By default on small signed bundles (the bundle's runtime, manifest and model plus 3 MiB
   of incompressible padding, with a package-free health check) so that 200 points take
   minutes; ``--campaign-bundle real`` uses the real bundles (about 5 s a point);
3. bytes downloaded for a model-only update against the full bundle: from
   ``benchmarks/ota_update.py``'s ``measure_update_bytes()`` when that module is present.

    .venv/bin/python benchmarks/ota.py [--points 200] [--repeat 5] [--seed 15] [--json out.json]

Progress goes to stderr; the figures to stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def build_sample(work: Path, versions: list[str]) -> tuple[dict[str, Path], Path, Path]:
    """The sample's intel-openvino bundle at each version, one fresh key; returns (bundles, pub, key)."""
    from tests.device.bundles import X86_TARGET, build_bundles, make_project

    bundles: dict[str, Path] = {}
    first = None
    for version in versions:
        project = make_project(
            REPO / "samples" / "digits", work / f"digits-{version}", version, key_from=first
        )
        first = first or project.path / "keys"
        say(f"building digits {version} for {X86_TARGET} ...")
        bundles[version] = build_bundles(project, work / f"dist-{version}", [X86_TARGET])[X86_TARGET]
    assert first is not None
    return bundles, first / "dev.pub", first / "dev.key"


def install_figures(
    bundle: Path, pub: Path, python: tuple[str, ...], repeat: int, work: Path
) -> dict[str, Any]:
    from edgepack.runtime.device.health_run import run_health
    from edgepack.runtime.device.installer import InstallOptions, install_bundle
    from edgepack.runtime.trust.public_keys import load_public_keys
    from edgepack.runtime.trust.reader import verify_and_extract, verify_tree

    keys = load_public_keys([pub])
    plain, installs, extract, reverify, health = [], [], [], [], []
    for i in range(repeat):
        dest = work / f"plain-{i}"

        def plain_extract(dest: Path = dest) -> None:
            with tarfile.open(bundle) as t:
                t.extractall(dest, filter="data")

        plain.append(timed(plain_extract))
        root = work / f"root-{i}"
        installs.append(
            timed(lambda root=root: install_bundle(root, bundle, keys, InstallOptions(python=python)))
        )
        tree = work / f"steps-{i}"
        extract.append(timed(lambda tree=tree: verify_and_extract(bundle, tree, keys, kind="tar.gz")))
        reverify.append(timed(lambda tree=tree: verify_tree(tree, keys)))
        health.append(timed(lambda tree=tree: run_health(tree, python, 120)))
        for path in (dest, root, tree):
            shutil.rmtree(path, ignore_errors=True)
        say(f"install run {i + 1}/{repeat}: plain {plain[-1]:.2f} s, install {installs[-1]:.2f} s")
    med = statistics.median
    return {
        "bundle_bytes": bundle.stat().st_size,
        "plain_extract_s": med(plain),
        "install_s": med(installs),
        "install_over_plain": med(installs) / med(plain),
        "steps_s": {
            "verify_and_extract": med(extract),
            "verify_tree": med(reverify),
            "health_check": med(health),
        },
        "repeat": repeat,
    }


def campaign_figures(
    which: str, real: dict[str, Path], pub: Path, key: Path, points: int, seed: int, work: Path
) -> dict[str, Any]:
    from tests.device.bundles import pack_tree, sign_tree, small_tree
    from tests.device.test_install_kill import campaign

    if which == "real":
        bundles = real
    else:
        source = next(iter(real.values()))
        bundles = {}
        for version in ("4.0.0", "4.1.0"):
            tree = small_tree(source, work / f"small-{version}", version=version, padding=48)
            sign_tree(tree, key)
            bundles[version] = pack_tree(tree, work / f"small-{version}.bundle.tar.gz")
    started = time.monotonic()
    counts = campaign(work / "campaign-root", bundles, pub, points, seed, log=say if points <= 20 else None)
    counts["seconds"] = round(time.monotonic() - started, 1)
    counts["bundles"] = which
    return counts


def update_figures() -> dict[str, Any] | None:
    """Helper C's model-only update figure (benchmarks/ota_update.py), when present."""
    try:
        from benchmarks.ota_update import measure_update_bytes  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    result: dict[str, Any] = measure_update_bytes()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bundle", type=Path, help="an x86_64 device bundle (default: build the sample's)")
    parser.add_argument("--trust", type=Path, help="its public key (with --bundle)")
    parser.add_argument("--points", type=int, default=200, help="kill campaign points (default 200)")
    parser.add_argument("--campaign-bundle", choices=("small", "real"), default="small")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    from edgepack.invoke.lambda_base import find_python

    python = (str(find_python("python3.12", "x86_64").path),)
    with tempfile.TemporaryDirectory(prefix="edgepack-ota-bench-") as tmp:
        work = Path(tmp)
        versions = ["1.0.0", "1.1.0"]
        if args.bundle:
            if not args.trust:
                parser.error("--bundle needs --trust")
            real, pub, key = {"1.0.0": args.bundle}, args.trust, None
            if args.campaign_bundle == "real":
                parser.error("--campaign-bundle real needs the built sample (no --bundle)")
        else:
            real, pub, key = build_sample(work, versions if args.campaign_bundle == "real" else versions[:1])
        figures: dict[str, Any] = {
            "install": install_figures(next(iter(real.values())), pub, python, args.repeat, work)
        }
        if key is None and args.campaign_bundle == "small":
            say("the small campaign bundles need the signing key: skipped with --bundle")
        else:
            say(f"kill campaign: {args.points} points ({args.campaign_bundle} bundles) ...")
            figures["kill_campaign"] = campaign_figures(
                args.campaign_bundle, real, pub, key or Path(), args.points, args.seed, work
            )
    figures["model_only_update"] = update_figures()

    inst = figures["install"]
    print(f"bundle: {inst['bundle_bytes'] / 1e6:.1f} MB")
    print(f"plain tarfile extract: {inst['plain_extract_s']:.2f} s (median of {inst['repeat']})")
    print(
        f"install (verify, extract, re-verify, health, switch): {inst['install_s']:.2f} s = "
        f"{inst['install_over_plain']:.1f}x the plain extract"
    )
    print("  steps: " + ", ".join(f"{k} {v:.2f} s" for k, v in inst["steps_s"].items()))
    if "kill_campaign" in figures:
        k = figures["kill_campaign"]
        print(
            f"kill -9 campaign ({k['bundles']} bundles, {k['points']} points, {k['seconds']} s): "
            f"{k['verified_after']}/{k['points']} left a complete verified version "
            f"({k['kept_old']} the old, {k['switched']} the new, {k['finished']} finished before the kill); "
            f"next install succeeded {k['next_install_ok']}/{k['points']}"
        )
    # -- model-only update (helper C's benchmarks/ota_update.py: measure_update_bytes()) --
    if figures["model_only_update"] is not None:
        print(f"model-only update: {json.dumps(figures['model_only_update'], sort_keys=True)}")
    else:
        print("model-only update: benchmarks/ota_update.py not present")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
