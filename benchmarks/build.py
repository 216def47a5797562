"""The whole build against the tools under it (issue 14).

For each project (the sample, and the largest zoo model with all five default targets), in
one run:

- **cold**: ``edgepack build PROJECT --json`` in a fresh process with an empty edgepack
  cache (uv's own wheel cache stays warm, as on any developer machine, and the emulated
  interpreter an arm64 Lambda's init check runs under is provisioned first, timed apart,
  as machine set-up): wall time, and each
  target's stage seconds from the build's own record (``convert``, ``vendor``, ``audit``,
  ``init check``, ``archive``, ``verify``, ``outputs``; targets overlap, so stages add up to
  more than the wall time);
- **warm**: the same command again, nothing changed: every target answered from the cache;
- **one target changed** (the hooks file edited): the rebuild reuses the original model's
  validation outputs and the cached conversions;
- **floor**, measured in the same run, each part in its own fresh process where it starts
  one: importing the frameworks the targets' converters need, loading the model and running
  each target's shipped variant's passes on an empty cache (the converter calls, with the
  load check a pass result gets), one ``uv`` install per distinct set of runtime packages,
  and one archive pass per target at the chosen level over that target's tree.

Every timed process reads bytecode from a cache under ``~/.cache/edgepack-bench/pycache``
(written by one untimed warm-up), as on an ordinary install: this machine kind sets
PYTHONDONTWRITEBYTECODE and its site-packages hold no ``.pyc`` files, so without it every
process compiles TensorFlow's sources again (several seconds, in the build and the floor alike).

Issue 14's targets: unchanged rebuild <= 5 % of the cold build; cold build <= 1.3x the floor.

    .venv/bin/python benchmarks/build.py [--projects sample mobilenet_like] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ZOO_DIR = REPO / "tests" / "zoo"
for p in (REPO, ZOO_DIR):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

EPOCH = "1700000000"
LARGEST_ZOO_MODEL = "mobilenet_like"
WARM_TARGET = 0.05
COLD_TARGET = 1.3
PYCACHE = Path.home() / ".cache" / "edgepack-bench" / "pycache"
FRAMEWORK_MODULES = {"tflite": "tensorflow", "onnx": "tf2onnx", "openvino": "openvino"}

# Runs in a fresh interpreter: the converter part of the floor for one project.
_CONVERT_FLOOR = r"""
import json, sys, tempfile, time
from pathlib import Path
project, targets, frameworks = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
t0 = time.perf_counter()
import importlib
for module in frameworks:
    importlib.import_module(module)
t_import = time.perf_counter() - t0

from edgepack.build_inputs import BuildInputs
from edgepack.cache import BuildCache, sha256_tree
from edgepack.config import load_project
from edgepack.optimize import optimize
from edgepack.versions import tool_versions

loaded = load_project(project)
with tempfile.TemporaryDirectory() as cache_dir:
    shared = BuildInputs(
        project=loaded, model_sha256=sha256_tree(loaded.model_path), signer=None,
        cache=BuildCache(Path(cache_dir)), epoch=0, progress=lambda m: None, tools=tool_versions(),
    )
    t0 = time.perf_counter()
    shared.source  # the model load every converter call starts from
    shared.calibration
    shared.validation
    t_load = time.perf_counter() - t0
    convert = {}
    for profile in loaded.targets:
        variant = next(v for v in profile.variants if v.name == targets[profile.name])
        t0 = time.perf_counter()
        optimize(shared, profile, variant, None, None)
        convert[profile.name] = time.perf_counter() - t0
print(json.dumps({"import": t_import, "load": t_load, "convert": convert}))
"""

# Runs in a fresh interpreter: one archive pass over a target's tree, as the build writes it.
_ARCHIVE_FLOOR = r"""
import json, sys, time
from pathlib import Path
from edgepack.packaging.archive import write_zip
from edgepack.packaging.bundle import write_bundle
tree, dest, kind = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
t0 = time.perf_counter()
if kind == "zip":
    write_zip(tree, dest, 1700000000)
else:
    write_bundle(tree, dest, 1700000000)
print(json.dumps(time.perf_counter() - t0))
"""


def bench_env(**more: str) -> dict[str, str]:
    """The environment of every timed process: bytecode read from a cache, as on an ordinary
    install (this machine kind sets PYTHONDONTWRITEBYTECODE and ships site-packages without
    .pyc files, so every process would otherwise compile TensorFlow's sources again)."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(PYCACHE), **more}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def warm_bytecode() -> None:
    """One untimed process that imports what the timed ones will, writing their bytecode."""
    modules = "tensorflow, keras, openvino, nncf, tf2onnx, onnx, onnxruntime, ai_edge_litert.interpreter"
    script = f"import {modules}\nimport edgepack.build, edgepack.cli.main, edgepack.optimize, edgepack.passes"
    subprocess.run([python(), "-c", script], env=bench_env(TF_CPP_MIN_LOG_LEVEL="3"), check=True)
    subprocess.run(
        [str(Path(python()).with_name("edgepack")), "--help"],
        env=bench_env(),
        check=True,
        capture_output=True,
    )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def python() -> str:
    return sys.executable


def run_build(project: Path, out: Path, cache: Path) -> tuple[float, dict[str, Any]]:
    env = bench_env(EDGEPACK_CACHE_DIR=str(cache), SOURCE_DATE_EPOCH=EPOCH)
    exe = Path(python()).with_name("edgepack")
    started = time.perf_counter()
    proc = subprocess.run(
        [str(exe), "build", str(project), "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - started
    if not proc.stdout.strip():
        raise SystemExit(f"build of {project} printed no result:\n{proc.stderr[-3000:]}")
    document = json.loads(proc.stdout)
    failed = [t for t in document["targets"] if not t["ok"]]
    if failed:
        raise SystemExit(f"build of {project} failed: {[t['error'] for t in failed]}")
    return wall, document


def floor(project: Path, document: dict[str, Any], work: Path) -> dict[str, Any]:
    from edgepack.cache import BuildCache
    from edgepack.config import load_project
    from edgepack.vendoring import vendor

    loaded = load_project(project)
    shipped = {t["target"]: t["variant"] for t in document["targets"]}
    formats = {t["format"] for t in document["targets"]}
    frameworks = sorted({FRAMEWORK_MODULES[f] for f in formats} | {"tensorflow"})
    proc = subprocess.run(
        [python(), "-c", _CONVERT_FLOOR, str(project), json.dumps(shipped), json.dumps(frameworks)],
        capture_output=True,
        text=True,
        env=bench_env(TF_CPP_MIN_LOG_LEVEL="3"),
        check=True,
    )
    converters = json.loads(proc.stdout.strip().splitlines()[-1])

    installs: dict[str, float] = {}
    seen: set[tuple[Any, ...]] = set()
    for profile in loaded.targets:
        what = (tuple(profile.runtime_packages), tuple(profile.platform_tags), profile.python)
        if what in seen:
            continue
        seen.add(what)
        dest = work / f"install-{profile.name}"
        started = time.perf_counter()
        vendor(profile, dest, BuildCache(work / f"cache-{profile.name}"))
        installs[profile.name] = time.perf_counter() - started
        shutil.rmtree(dest, ignore_errors=True)

    archives: dict[str, float] = {}
    for target in document["targets"]:
        artifact = Path(target["artifact"])
        tree = work / f"tree-{target['target']}"
        shutil.unpack_archive(artifact, tree, format="zip" if artifact.suffix == ".zip" else "gztar")
        kind = "zip" if artifact.suffix == ".zip" else "bundle"
        proc = subprocess.run(
            [python(), "-c", _ARCHIVE_FLOOR, str(tree), str(work / f"floor-{artifact.name}"), kind],
            capture_output=True,
            text=True,
            env=bench_env(),
            check=True,
        )
        archives[target["target"]] = float(proc.stdout.strip())
        shutil.rmtree(tree, ignore_errors=True)
    total = (
        converters["import"]
        + converters["load"]
        + sum(converters["convert"].values())
        + sum(installs.values())
        + sum(archives.values())
    )
    return {"converters": converters, "installs": installs, "archives": archives, "total": total}


def project_for(name: str, work: Path) -> Path:
    """A writable copy of the project, with the signing key its config names."""
    from edgepack.signing.keys import generate_keypair

    if name == "sample":
        src = REPO / "samples" / "digits"
    else:
        from make_zoo import ensure_zoo

        src = ensure_zoo(Path.home() / ".cache" / "edgepack-bench") / name
    dest = work / name
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
    if name == "sample" and not (dest / "keys" / "dev.key").is_file():
        generate_keypair(dest / "keys" / "dev")
    return dest


def stage_table(document: dict[str, Any]) -> list[str]:
    names = ["convert", "vendor", "audit", "init check", "archive", "verify", "outputs", "reuse"]
    used = [n for n in names if any(n in t["stages"] for t in document["targets"])]
    rows = ["| target | " + " | ".join(used) + " |", "|---" * (len(used) + 1) + "|"]
    for t in document["targets"]:
        cells = [f"{t['stages'][n]:.1f}" if n in t["stages"] else "" for n in used]
        rows.append(f"| {t['target']} | " + " | ".join(cells) + " |")
    return rows


def provision(project: Path, cache: Path) -> float:
    """Machine set-up a project's first build would otherwise pay once: the emulated
    interpreter for another architecture's Lambda init check (Debian packages under qemu)."""
    from edgepack.cache import BuildCache
    from edgepack.config import load_project
    from edgepack.invoke.lambda_base import emulated_python, host_arch

    started = time.perf_counter()
    for profile in load_project(project).targets:
        if profile.kind == "lambda" and profile.arch != host_arch():
            runtime = profile.lambda_runtime or f"python{profile.python}"
            emulated_python(runtime, profile.arch, cache=BuildCache(cache))
    return time.perf_counter() - started


def bench(name: str, work: Path) -> dict[str, Any]:
    project = project_for(name, work)
    cache = work / f"cache-{name}"
    out = work / f"out-{name}"
    log(f"{name}: provisioning emulated interpreters (not timed as part of the build)")
    provisioned = provision(project, cache)
    log(f"{name}: cold build")
    cold, cold_doc = run_build(project, out, cache)
    log(f"{name}: unchanged rebuild")
    warm, warm_doc = run_build(project, out, cache)
    assert all(t["cached"] for t in warm_doc["targets"]), (
        "the unchanged rebuild was not answered from the cache"
    )
    hooks = project / "hooks.py"
    changed = None
    if hooks.is_file():
        log(f"{name}: hooks edited, rebuild")
        hooks.write_text(hooks.read_text() + "\n# edited\n")
        changed, _ = run_build(project, out, cache)
    log(f"{name}: floor")
    measured_floor = floor(project, cold_doc, work / f"floor-{name}")
    return {
        "project": name,
        "targets": [t["target"] for t in cold_doc["targets"]],
        "cold": cold,
        "warm": warm,
        "changed_hooks": changed,
        "provisioning": provisioned,
        "floor": measured_floor,
        "cold_stages": cold_doc,
        "warm_stages": warm_doc,
    }


def report(results: list[dict[str, Any]]) -> str:
    lines = [
        f"`benchmarks/build.py` on {os.cpu_count()} cores, Python {sys.version.split()[0]}, bytecode cached",
        "",
        "| project | targets | cold | unchanged rebuild | / cold | one target changed | floor | cold / floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        f = r["floor"]["total"]
        changed = f"{r['changed_hooks']:.1f} s" if r["changed_hooks"] is not None else "n/a"
        lines.append(
            f"| {r['project']} | {len(r['targets'])} | {r['cold']:.1f} s | {r['warm']:.2f} s | "
            f"{r['warm'] / r['cold']:.1%} | {changed} | {f:.1f} s | {r['cold'] / f:.2f}x |"
        )
    lines.append("")
    lines.append(f"Targets: unchanged rebuild <= {WARM_TARGET:.0%} of cold; cold <= {COLD_TARGET}x floor.")
    for r in results:
        fl = r["floor"]
        c = fl["converters"]
        lines += [
            "",
            f"### {r['project']}: floor parts",
            f"- (machine set-up, not counted: emulated interpreters {r['provisioning']:.1f} s)",
            f"- framework import {c['import']:.1f} s; model and data load {c['load']:.1f} s",
            "- converter calls: " + ", ".join(f"{k} {v:.1f} s" for k, v in c["convert"].items()),
            "- uv installs: " + ", ".join(f"{k} {v:.1f} s" for k, v in fl["installs"].items()),
            "- archive passes: " + ", ".join(f"{k} {v:.1f} s" for k, v in fl["archives"].items()),
            "",
            f"### {r['project']}: cold build, seconds per stage (targets overlap)",
            *stage_table(r["cold_stages"]),
            "",
            f"### {r['project']}: unchanged rebuild, seconds per stage",
            *stage_table(r["warm_stages"]),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", nargs="*", default=["sample", LARGEST_ZOO_MODEL])
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="edgepack-bench-build-"))
    log("writing bytecode for the timed processes (untimed)")
    warm_bytecode()
    try:
        results = [bench(name, work) for name in args.projects]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(report(results))


if __name__ == "__main__":
    main()
