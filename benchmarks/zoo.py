#!/usr/bin/env python
"""Benchmark: every zoo model (tests/zoo/make_zoo.py) built for every default target.

Per model x target, with ``edgepack.build()`` exactly as ``edgepack build`` runs it:

- variant shipped and its precision, as the manifest records it (counted from the shipped
  file's ops): full int8, mixed (int8 with the N layers a mixed-precision variant kept in
  float), dynamic int8, fp16 or fp32;
- top-1 agreement and accuracy drop against the original model (the build's fidelity
  record in ``edgepack.json``; accuracy only where the model is labelled);
- model size and p50 latency (batch 1, the manifest's sample input, ``--runs`` timed calls
  after a warm-up, loaded with ``edgepack.build.host_predictor`` and the target's runtime
  settings) as ratios to an fp32 model of the same backend converted here by edgepack's
  own passes (``tflite-convert`` fp32, ``onnx-convert``, ``openvino-convert`` f32);
- build time: the whole ``build()`` of that one target. Optimized models and artifacts are
  not reused (the benchmark's cache drops them first, unless ``--keep-cache``); vendored
  wheels are, so the first target of each kind also pays its vendoring once.

A target that fails gets a row with its one-line error.

    .venv/bin/python benchmarks/zoo.py [--models torch_cnn ...] [--targets jetson-trt ...]
        [--runs 200] [--zoo DIR] [--cache DIR] [--json out.json]

Progress goes to stderr, the markdown table to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("GLOG_minloglevel", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ZOO_DIR = REPO / "tests" / "zoo"
for p in (REPO, ZOO_DIR):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))  # this checkout's edgepack and zoo, whatever is installed

from make_zoo import TARGETS, ZOO, ensure_zoo  # noqa: E402

from edgepack.artifact_files import read_artifact  # noqa: E402
from edgepack.build import build, host_predictor  # noqa: E402
from edgepack.cache import BuildCache  # noqa: E402
from edgepack.config import load_project  # noqa: E402
from edgepack.errors import EdgepackError  # noqa: E402
from edgepack.model.base import ModelArtifact  # noqa: E402
from edgepack.model.loader import brief, load_model  # noqa: E402
from edgepack.passes import PassContext, get_pass  # noqa: E402
from edgepack.report import time_predict  # noqa: E402
from edgepack.runtime.sample import SAMPLE_FILE, read_sample  # noqa: E402
from edgepack.runtime.signature import IOSignature  # noqa: E402
from edgepack.versions import tool_versions  # noqa: E402

EPOCH = 1_700_000_000
# How each backend's fp32 baseline is made from the source model.
FP32_PASSES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "litert": [("tflite-convert", {"mode": "fp32"})],
    "onnxruntime": [("onnx-convert", {"opset": 17})],
    "openvino": [("openvino-convert", {"compress_to_fp16": False})],
}
MODEL_SUFFIXES = (".tflite", ".onnx", ".xml", ".bin")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- precision of a shipped model -------------------------------------------------------


def precision_class(manifest: dict[str, Any], model_path: Path) -> str:
    """From the manifest: its precision is counted from the shipped file's ops, and a
    mixed-precision variant records the layers it kept in float."""
    model = manifest["model"]
    precision = model["precision"]
    if precision not in ("int8", "int16x8"):
        return {"dynamic": "dynamic int8"}.get(precision, precision)
    kept = int((model.get("details") or {}).get("float_layers") or 0)
    return f"full {precision}" if kept == 0 else f"mixed {precision}, {kept} float layers"


# -- measuring --------------------------------------------------------------------------


def _size(path: Path) -> int:
    files = [path] if path.is_file() else []
    if path.suffix == ".xml":
        files.append(path.with_suffix(".bin"))
    return sum(f.stat().st_size for f in files if f.exists())


def fp32_baseline(
    project: Path,
    backend: str,
    settings: dict[str, Any],
    sample: dict[str, np.ndarray],
    runs: int,
    work: Path,
) -> dict[str, Any]:
    """Size and p50 of the source model converted to this backend in fp32 (or why not)."""
    pf = load_project(project).file
    root = project
    source = load_model(root / pf.model.path, pf.model.format, pf.model.inputs, pf.model.outputs)
    model: ModelArtifact = source.artifact
    native = {"litert": "tflite", "onnxruntime": "onnx"}.get(backend)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            for i, (name, raw) in enumerate([] if model.format == native else FP32_PASSES[backend]):
                p = get_pass(name)
                config = p.parse_config(dict(raw), f"benchmark fp32 {name}")
                ctx = PassContext(work_dir=work / f"fp32-{backend}-{i}", target=f"fp32-{backend}")
                ctx.work_dir.mkdir(parents=True)
                model = p.run(model, config, ctx)
        predictor = host_predictor(
            backend, model.path, settings, model.signature, model.native_inputs, model.native_outputs
        )
        p50, _ = time_predict(predictor.predict, sample, runs)
    except Exception as e:
        return {"error": brief(e, 120)}
    return {"bytes": _size(model.path), "p50_ms": p50}


def measure_artifact(artifact: Path, runs: int, work: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    sizes, files = read_artifact(
        artifact,
        lambda n: n in ("edgepack.json", SAMPLE_FILE) or n.startswith("model/") or n.endswith(".npz"),
    )
    manifest = json.loads(files.pop("edgepack.json"))
    for name, data in files.items():
        dest = work / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    model = manifest["model"]
    model_path = work / model["file"]
    signature = IOSignature.from_dict(model["signature"])
    settings = dict(manifest["runtime"].get("settings") or {})
    predictor = host_predictor(
        manifest["runtime"]["backend"],
        model_path,
        settings,
        signature,
        tuple(model.get("native_inputs") or ()),
        tuple(model.get("native_outputs") or ()),
    )
    sample, _ = read_sample(work, manifest["sample"])
    p50, _ = time_predict(predictor.predict, sample, runs)
    metrics = (manifest.get("fidelity") or {}).get("metrics") or {}
    measured = {
        "backend": manifest["runtime"]["backend"],
        "variant": model.get("variant"),
        "format": model["format"],
        "precision": precision_class(manifest, model_path),
        "top1_agreement": metrics.get("top1_agreement"),
        "accuracy_drop": metrics.get("accuracy_drop"),
        "model_bytes": sum(
            s for n, s in sizes.items() if n.startswith("model/") and n.endswith(MODEL_SUFFIXES)
        ),
        "p50_ms": p50,
    }
    return measured, {"settings": settings, "sample": sample}


def bench_cell(project: Path, target: str, cache: BuildCache, runs: int, tmp: Path) -> dict[str, Any]:
    out = tmp / "dist"
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = build(project, out, [target], cache=cache, epoch=EPOCH)
    except EdgepackError as e:
        return {
            "ok": False,
            "exit_code": e.exit_code,
            "error": e.hint(),
            "build_s": time.perf_counter() - started,
        }
    build_s = time.perf_counter() - started
    (r,) = result.results
    if not r.ok or r.artifact is None:
        return {"ok": False, "exit_code": r.exit_code, "error": r.error, "build_s": build_s}
    row, ctx = measure_artifact(r.artifact, runs, tmp / "unpacked")
    base = fp32_baseline(project, row["backend"], ctx["settings"], ctx["sample"], runs, tmp)
    row.update(ok=True, build_s=build_s, fp32=base)
    if "error" not in base:
        row["size_ratio"] = row["model_bytes"] / base["bytes"]
        row["latency_ratio"] = row["p50_ms"] / base["p50_ms"]
    return row


# -- output -----------------------------------------------------------------------------


def _f(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | target | variant | precision | top-1 agr | acc drop | size | vs fp32 "
        "| p50 ms | vs fp32 | build s |\n"
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    lines = [head]
    for r in rows:
        if not r["ok"]:
            error = str(r["error"]).replace("|", "\\|")
            lines.append(
                f"| {r['model']} | {r['target']} | FAILED (exit {r['exit_code']}) | {error} "
                f"| | | | | | | {r['build_s']:.1f} |"
            )
            continue
        lines.append(
            f"| {r['model']} | {r['target']} | {r['variant']} | {r['format']} {r['precision']} "
            f"| {_f(r['top1_agreement'], '.4f')} | {_f(r['accuracy_drop'], '+.4f')} "
            f"| {r['model_bytes'] / 1e3:.1f} KB | {_f(r.get('size_ratio'), '.2f')}x "
            f"| {r['p50_ms']:.3f} | {_f(r.get('latency_ratio'), '.2f')}x | {r['build_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", choices=sorted(ZOO), help="zoo models (default: all)")
    parser.add_argument("--targets", nargs="*", choices=TARGETS, help="targets (default: all)")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per latency figure")
    parser.add_argument(
        "--zoo",
        type=Path,
        default=Path(tempfile.gettempdir()) / "edgepack-zoo",
        help="where the zoo is built (reused while its content key matches)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(
            os.environ.get("EDGEPACK_CACHE_DIR") or Path(tempfile.gettempdir()) / "edgepack-zoo-bench"
        ),
        help="build cache (vendored wheels reused; optimized models and artifacts dropped first)",
    )
    parser.add_argument("--keep-cache", action="store_true", help="reuse cached models and artifacts too")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    if not args.keep_cache:
        for namespace in ("models", "artifacts"):
            shutil.rmtree(args.cache / namespace, ignore_errors=True)
    cache = BuildCache(args.cache)
    log(f"zoo under {args.zoo}")
    zoo = ensure_zoo(args.zoo)
    rows = []
    for model in args.models or list(ZOO):
        for target in args.targets or list(TARGETS):
            log(f"{model} x {target}")
            with tempfile.TemporaryDirectory(prefix="edgepack-zoo-bench-") as tmp:
                row = bench_cell(zoo / model, target, cache, args.runs, Path(tmp))
            rows.append({"model": model, "target": target, **row})
            log(f"  -> {row.get('precision') or row.get('error')}")

    tools = tool_versions()
    print(f"## edgepack zoo: {len(rows)} builds\n")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        + ", ".join(f"{k} {v}" for k, v in sorted(tools.items()))
        + f". Latency: p50 of {args.runs} runs at batch 1 on this machine (the target's runtime settings, "
        "host build of each backend); ratios against an fp32 model of the same backend.\n"
    )
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
