#!/usr/bin/env python
"""Benchmark: size, latency, accuracy and conversion time per backend and precision.

For the sample digits model, each backend's fp32 baseline and the variants its target
profile ships (``rpi-tflite`` for TFLite/LiteRT, ``jetson-trt`` for ONNX, ``intel-openvino``
for OpenVINO) are converted by running edgepack's own passes (``get_pass`` ->
``parse_config`` -> ``run``, calibration = the sample's calibration set one sample per
batch, as ``edgepack build`` does), then loaded with edgepack's runtime backend behind a
``Predictor`` (what an artifact runs) and measured, all in this one process:

- size: the model file(s) (OpenVINO: xml + bin) and the weights alone (TFLite buffers,
  ONNX initializers, OpenVINO .bin), each as a ratio to that backend's fp32;
- latency at batch 1: p50/p99 over ``--runs`` timed ``Predictor.predict`` calls after a
  warm-up, and throughput at batch 64;
- accuracy on the 500 held-out digits against the original Keras model
  (``edgepack.fidelity.evaluate``: accuracy drop in points, top-1 agreement, max error);
- conversion time: the passes' wall time; frameworks are imported before timing starts.

Then it checks the issue's targets: int8 accuracy drop <= 1.0 point and int8 model size
<= 0.30x fp32, on every backend.

    .venv/bin/python benchmarks/backends.py [--runs 500] [--json out.json]

Progress goes to stderr; the report (markdown) to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # benchmark this checkout, whatever is installed

from edgepack.config import load_project  # noqa: E402
from edgepack.data import Dataset, load_dataset  # noqa: E402
from edgepack.fidelity import evaluate  # noqa: E402
from edgepack.model.base import Batch, ModelArtifact  # noqa: E402
from edgepack.model.loader import load_model  # noqa: E402
from edgepack.passes import PassContext, get_pass  # noqa: E402
from edgepack.runtime.backends import load_backend  # noqa: E402
from edgepack.runtime.predictor import Predictor  # noqa: E402
from edgepack.targets import load_target  # noqa: E402
from edgepack.versions import tool_versions  # noqa: E402

SAMPLE = REPO / "samples" / "digits"
WARMUP = 50
BATCH = 64  # throughput batch, and the batch the accuracy pass runs in (as the build's gate)
MAX_ACCURACY_DROP_POINTS = 1.0
MAX_INT8_SIZE_RATIO = 0.30

# Runtime settings used for every measurement. One intra-op thread everywhere, so the
# backends are compared like for like (and a 2-core host is not oversubscribed); CPU only;
# OpenVINO in f32 (it would run bf16 on AMX CPUs otherwise) with the latency hint.
SETTINGS: dict[str, dict[str, Any]] = {
    "litert": {"threads": 1},
    "onnxruntime": {
        "providers": [{"name": "CPUExecutionProvider"}],
        "threads": 1,
        "graph_optimization_level": "all",
    },
    "openvino": {
        "device": "CPU",
        "inference_precision": "f32",
        "performance_hint": "LATENCY",
        "threads": 1,
    },
}


@dataclass(frozen=True)
class BackendPlan:
    backend: str  # runtime backend name
    label: str
    profile: str  # target profile whose variants are measured
    fp32: list[dict[str, Any]]  # the fp32 baseline's passes: [{"name", "config"}]


PLANS = [
    BackendPlan(
        "litert", "TFLite/LiteRT", "rpi-tflite", [{"name": "tflite-convert", "config": {"mode": "fp32"}}]
    ),
    BackendPlan(
        "onnxruntime", "ONNX Runtime (CPU)", "jetson-trt", [{"name": "onnx-convert", "config": {"opset": 17}}]
    ),
    BackendPlan(
        "openvino",
        "OpenVINO (CPU, f32)",
        "intel-openvino",
        [{"name": "openvino-convert", "config": {"compress_to_fp16": False}}],
    ),
]

# Imported before any timing so that conversion times exclude library import.
FRAMEWORKS = [
    "tensorflow",
    "keras",
    "ai_edge_litert.interpreter",
    "tf2onnx",
    "onnx",
    "onnxruntime",
    "onnxruntime.quantization",
    "onnxconverter_common",
    "openvino",
    "nncf",
]


@dataclass
class Row:
    backend: str
    label: str
    variant: str
    precision: str
    passes: list[str]
    file_bytes: int
    weights_bytes: int
    convert_s: float | None
    pass_seconds: dict[str, float]
    warm_passes: list[str]  # passes already run earlier in this process (their libraries warm)
    load_ms: float | None
    p50_ms: float
    p99_ms: float
    batch_ms_p50: float
    images_per_s: float
    accuracy: float
    accuracy_drop_points: float
    top1_agreement: float | None
    max_abs_error: float
    gate_passed: bool | None
    gate_failures: list[str] = field(default_factory=list)
    runtime: dict[str, Any] = field(default_factory=dict)
    size_ratio: float | None = None
    weights_ratio: float | None = None
    p50_ratio: float | None = None


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- sizes ----------------------------------------------------------------------------


def weights_bytes(model: ModelArtifact) -> int:
    """Bytes of stored weights: TFLite buffers, ONNX initializers, the OpenVINO .bin."""
    if model.format == "tflite":
        from tensorflow.lite.python import schema_py_generated as schema

        flat = schema.Model.GetRootAs(model.path.read_bytes(), 0)
        total = 0
        for i in range(flat.BuffersLength()):
            buf = flat.Buffers(i)
            # Large models keep buffers outside the flatbuffer (offset/size) instead of inline.
            total += buf.DataLength() or int(buf.Size())
        return total
    if model.format == "onnx":
        import onnx
        from onnx import numpy_helper

        proto = onnx.load(str(model.path))
        return int(sum(numpy_helper.to_array(t).nbytes for t in proto.graph.initializer))
    if model.format == "openvino":
        return model.path.with_suffix(".bin").stat().st_size
    if model.format == "keras":
        keras = importlib.import_module("keras")
        net = keras.saving.load_model(model.path, compile=False)
        return int(sum(np.asarray(w).nbytes for w in net.weights))
    raise ValueError(f"no weights accounting for {model.format}")


# -- timing ---------------------------------------------------------------------------


def latency(predict: Callable[[Batch], Any], feed: Batch, runs: int, warmup: int) -> np.ndarray:
    """Milliseconds per call over ``runs`` timed calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        predict(feed)
    gc.collect()
    samples = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        predict(feed)
        samples[i] = (time.perf_counter() - start) * 1e3
    return samples


def predict_all(predict: Callable[[Batch], Batch], inputs: Batch) -> Batch:
    n = len(next(iter(inputs.values())))
    chunks = [predict({k: v[s : s + BATCH] for k, v in inputs.items()}) for s in range(0, n, BATCH)]
    return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}


# -- conversion -----------------------------------------------------------------------

_RUN_BEFORE: set[str] = set()  # pass names already run in this process


def convert(
    source: ModelArtifact,
    passes: list[dict[str, Any]],
    calibration: Dataset,
    work: Path,
    target: str,
) -> tuple[ModelArtifact, dict[str, float], list[str]]:
    """Run the passes in order, as ``edgepack build`` does.

    Returns the model, wall seconds per pass, and the passes that had already run earlier
    in this process (the first run of a pass also pays its converter's one-time setup).
    """
    model = source
    seconds: dict[str, float] = {}
    warm: list[str] = []
    for i, spec in enumerate(passes):
        p = get_pass(spec["name"])
        config = p.parse_config(dict(spec.get("config") or {}), f"benchmark {target}.{spec['name']}")
        ctx = PassContext(
            work_dir=work / f"{i:02d}-{spec['name']}",
            target=target,
            calibration=lambda: calibration.batches(1),
            progress=lambda m: log(f"    {m}"),
        )
        ctx.work_dir.mkdir(parents=True)
        # NNCF and tf2onnx print progress on stdout: keep stdout for the report.
        with contextlib.redirect_stdout(sys.stderr):
            start = time.perf_counter()
            model = p.run(model, config, ctx)
            seconds[spec["name"]] = time.perf_counter() - start
        if spec["name"] in _RUN_BEFORE:
            warm.append(spec["name"])
        _RUN_BEFORE.add(spec["name"])
    return model, seconds, warm


# -- one measurement ------------------------------------------------------------------


def measure(
    plan: BackendPlan,
    variant: str,
    passes: list[dict[str, Any]],
    source: ModelArtifact,
    reference: Batch,
    calibration: Dataset,
    validation: Dataset,
    thresholds: Any,
    work: Path,
    runs: int,
) -> Row:
    log(f"[{plan.backend} {variant}] " + " -> ".join(p["name"] for p in passes))
    model, seconds, warm = convert(source, passes, calibration, work, plan.profile)
    start = time.perf_counter()
    backend = load_backend(plan.backend, model.path, SETTINGS[plan.backend])
    load_ms = (time.perf_counter() - start) * 1e3
    predictor = Predictor(backend, model.signature, model.native_inputs, model.native_outputs)

    candidate = predict_all(predictor.predict, validation.inputs)
    report = evaluate(reference, candidate, validation.labels, thresholds)
    m = report.metrics
    assert m.candidate_accuracy is not None and m.accuracy_drop is not None

    one = {k: v[:1] for k, v in validation.inputs.items()}
    b1 = latency(predictor.predict, one, runs, WARMUP)
    many = {k: v[:BATCH] for k, v in validation.inputs.items()}
    b64 = latency(predictor.predict, many, max(10, runs // 10), 5)
    return Row(
        backend=plan.backend,
        label=plan.label,
        variant=variant,
        precision=model.precision,
        passes=[p["name"] for p in passes],
        file_bytes=sum(f.stat().st_size for f in model.files()),
        weights_bytes=weights_bytes(model),
        convert_s=sum(seconds.values()),
        pass_seconds={k: round(v, 3) for k, v in seconds.items()},
        warm_passes=warm,
        load_ms=load_ms,
        p50_ms=float(np.percentile(b1, 50)),
        p99_ms=float(np.percentile(b1, 99)),
        batch_ms_p50=float(np.percentile(b64, 50)),
        images_per_s=BATCH * len(b64) / (float(b64.sum()) / 1e3),
        accuracy=m.candidate_accuracy,
        accuracy_drop_points=m.accuracy_drop * 100,
        top1_agreement=m.top1_agreement,
        max_abs_error=m.max_abs_error,
        gate_passed=report.passed,
        gate_failures=list(report.failures),
        runtime=backend.describe(),
    )


def measure_keras(source: Any, reference: Batch, validation: Dataset, runs: int) -> Row:
    """The original model through its own framework (Keras ``predict_on_batch``): the reference."""
    log("[keras fp32] reference")
    model: ModelArtifact = source.artifact
    assert validation.labels is not None
    accuracy = float(np.mean(np.argmax(next(iter(reference.values())), axis=-1) == validation.labels))
    one = {k: v[:1] for k, v in validation.inputs.items()}
    b1 = latency(source.predict, one, runs, WARMUP)
    many = {k: v[:BATCH] for k, v in validation.inputs.items()}
    b64 = latency(source.predict, many, max(10, runs // 10), 5)
    return Row(
        backend="keras",
        label="Keras (TF, original)",
        variant="original",
        precision="fp32",
        passes=[],
        file_bytes=model.path.stat().st_size,
        weights_bytes=weights_bytes(model),
        convert_s=None,
        pass_seconds={},
        warm_passes=[],
        load_ms=None,
        p50_ms=float(np.percentile(b1, 50)),
        p99_ms=float(np.percentile(b1, 99)),
        batch_ms_p50=float(np.percentile(b64, 50)),
        images_per_s=BATCH * len(b64) / (float(b64.sum()) / 1e3),
        accuracy=accuracy,
        accuracy_drop_points=0.0,
        top1_agreement=1.0,
        max_abs_error=0.0,
        gate_passed=None,
    )


# -- report ---------------------------------------------------------------------------


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    flags: list[str] = []
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu = value.strip()
            elif key.strip() == "flags" and not flags:
                have = set(value.split())
                flags = [
                    x
                    for x in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16")
                    if x in have
                ]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cpu_flags": flags,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _num(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def markdown_table(rows: list[Row]) -> str:
    head = (
        "| backend | variant | file bytes | size x fp32 | weights bytes | weights x fp32 | load ms "
        "| p50 ms (b=1) | p99 ms (b=1) | p50 x fp32 | img/s (b=64) "
        "| accuracy % | drop (pts) | top-1 agree | max abs err | convert s |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r.label} | {r.variant} | {r.file_bytes:,} | {_ratio(r.size_ratio)} | {r.weights_bytes:,} "
            f"| {_ratio(r.weights_ratio)} | {_num(r.load_ms, '.1f')} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | {_ratio(r.p50_ratio)} "
            f"| {r.images_per_s:,.0f} | {r.accuracy * 100:.1f} | {r.accuracy_drop_points:+.1f} "
            f"| {_num(r.top1_agreement, '.3f')} | {r.max_abs_error:.2g} "
            f"| {_num(r.convert_s, '.2f')}{'†' if r.warm_passes else ''} |"
        )
    return "\n".join(lines)


def conversion_summary(rows: list[Row]) -> str:
    runs: dict[str, list[float]] = {}
    for r in rows:
        for name, sec in r.pass_seconds.items():
            runs.setdefault(name, []).append(sec)
    parts = []
    for name, secs in runs.items():
        later = ", ".join(f"{s:.2f}" for s in secs[1:])
        parts.append(f"{name} {secs[0]:.2f} s" + (f" then {later} s" if later else ""))
    return "; ".join(parts)


def check_targets(rows: list[Row]) -> list[dict[str, Any]]:
    results = []
    for plan in PLANS:
        int8 = next((r for r in rows if r.backend == plan.backend and r.variant == "int8"), None)
        if int8 is None:
            continue
        drop = int8.accuracy_drop_points
        results.append(
            {
                "profile": plan.profile,
                "target": f"int8 accuracy drop <= {MAX_ACCURACY_DROP_POINTS} pt",
                "backend": plan.backend,
                "value": round(drop, 3),
                "met": drop <= MAX_ACCURACY_DROP_POINTS,
                "text": f"{drop:+.1f} pt ({int8.accuracy * 100:.1f}% vs Keras "
                f"{(int8.accuracy * 100 + drop):.1f}%)",
            }
        )
        assert int8.size_ratio is not None and int8.weights_ratio is not None
        results.append(
            {
                "profile": plan.profile,
                "target": f"int8 size <= {MAX_INT8_SIZE_RATIO:.2f}x fp32",
                "backend": plan.backend,
                "value": round(int8.size_ratio, 4),
                "met": int8.size_ratio <= MAX_INT8_SIZE_RATIO,
                "text": f"{int8.size_ratio:.3f}x ({int8.file_bytes:,} / "
                f"{int8.file_bytes / int8.size_ratio:,.0f} bytes); weights alone {int8.weights_ratio:.3f}x",
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="timed batch-1 calls per model (default 500)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    started = time.perf_counter()
    when = datetime.datetime.now(datetime.UTC)
    load_before = _loadavg()

    # Frameworks first (TensorFlow quietly, through edgepack's helper), timed apart.
    from edgepack.model.tf_env import import_keras, import_tensorflow

    import_seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    import_tensorflow()
    import_keras()
    import_seconds["tensorflow+keras"] = time.perf_counter() - t0
    for name in FRAMEWORKS[2:]:
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            importlib.import_module(name)
        import_seconds[name] = time.perf_counter() - t0

    project = load_project(SAMPLE)
    pf = project.file
    assert pf.calibration is not None and pf.validation is not None
    source = load_model(project.model_path, pf.model.format, pf.model.inputs, pf.model.outputs)
    signature = source.artifact.signature
    calibration = load_dataset(pf.calibration, project.root, signature, f"{project.config_path}: calibration")
    validation = load_dataset(pf.validation, project.root, signature, f"{project.config_path}: validation")
    thresholds = pf.validation.thresholds
    reference = predict_all(source.predict, validation.inputs)

    rows: list[Row] = [measure_keras(source, reference, validation, args.runs)]
    with tempfile.TemporaryDirectory(prefix="edgepack-bench-") as tmp:
        # Temp files the converters make (TensorFlow's autograph sources, SavedModels) land
        # here and go with it.
        saved_tempdir = tempfile.tempdir
        tempfile.tempdir = tmp
        try:
            for plan in PLANS:
                profile = load_target(plan.profile)
                chains = [("fp32", plan.fp32)] + [
                    (v.name, [{"name": s.name, "config": s.config} for s in v.passes])
                    for v in profile.variants
                ]
                backend_rows = []
                for variant, passes in chains:
                    work = Path(tmp) / f"{plan.backend}-{variant}"
                    backend_rows.append(
                        measure(
                            plan,
                            variant,
                            passes,
                            source.artifact,
                            reference,
                            calibration,
                            validation,
                            thresholds,
                            work,
                            args.runs,
                        )
                    )
                base = backend_rows[0]
                for r in backend_rows:
                    r.size_ratio = r.file_bytes / base.file_bytes
                    r.weights_ratio = r.weights_bytes / base.weights_bytes
                    r.p50_ratio = r.p50_ms / base.p50_ms
                rows.extend(backend_rows)
        finally:
            tempfile.tempdir = saved_tempdir

    targets = check_targets(rows)
    total = time.perf_counter() - started
    load_after = _loadavg()
    info = machine()
    versions = tool_versions()

    out = sys.stdout
    print("# edgepack backend benchmark: samples/digits", file=out)
    print(file=out)
    print(f"- date: {when.isoformat(timespec='seconds')}", file=out)
    print(
        f"- machine: {info['cpu']}, {info['logical_cpus']} logical CPUs ({info['usable_cpus']} usable); "
        f"flags: {', '.join(info['cpu_flags']) or 'none of avx2/avx512/vnni/amx'}; {info['platform']}",
        file=out,
    )
    print(
        f"- load average (1 min) at start {load_before}, at end {load_after}: other work on the host "
        "skews latency, p99 most",
        file=out,
    )
    print(f"- python {info['python']}; " + ", ".join(f"{k} {v}" for k, v in versions.items()), file=out)
    print(
        f"- model: {project.model_path.relative_to(REPO)}; calibration {calibration.size} samples "
        f"(batches of 1); validation {validation.size} held-out digits with labels",
        file=out,
    )
    print(
        "- variants: each backend's fp32 baseline, then its target profile's variants with the profile's "
        "pass configs: "
        + "; ".join(
            f"{p.backend} <- {p.profile} ({', '.join(v.name for v in load_target(p.profile).variants)})"
            for p in PLANS
        ),
        file=out,
    )
    print(
        f"- latency: Predictor.predict, batch 1, {WARMUP} warm-up + {args.runs} timed calls; "
        f"throughput: batch {BATCH}, {max(10, args.runs // 10)} timed calls; time.perf_counter",
        file=out,
    )
    print(
        "- runtime settings: "
        + "; ".join(f"{k} {json.dumps(v, separators=(',', ':'))}" for k, v in SETTINGS.items()),
        file=out,
    )
    print(
        "- conversion: wall time of the variant's passes run from the Keras file (no build cache); "
        "framework imports done before timing ("
        + ", ".join(f"{k} {v:.1f}s" for k, v in import_seconds.items())
        + ")",
        file=out,
    )
    print(
        "- ratios are against the same backend's fp32; drop = Keras accuracy - variant accuracy (points); "
        "weights = TFLite buffers / ONNX initializers / OpenVINO .bin",
        file=out,
    )
    print(file=out)
    print(markdown_table(rows), file=out)
    print(file=out)
    print(
        "† the chain repeats a pass already run in this process (libraries and TensorFlow state warm). "
        "Per pass, first (cold) run vs later runs: " + conversion_summary(rows),
        file=out,
    )
    print(file=out)
    print("Fidelity gate (project thresholds) per variant:", file=out)
    for r in rows[1:]:
        verdict = "passed" if r.gate_passed else "FAILED: " + "; ".join(r.gate_failures)
        print(f"- {r.label} {r.variant}: {verdict}", file=out)
    print(file=out)
    print("Targets (issue 3):", file=out)
    for t in targets:
        print(
            f"- {t['target']} — {t['backend']} ({t['profile']}): {'met' if t['met'] else 'NOT MET'}, {t['text']}",
            file=out,
        )
    for name in sorted({t["target"] for t in targets}):
        group = [t for t in targets if t["target"] == name]
        ok = all(t["met"] for t in group)
        print(f"- {name} on all {len(group)} backends: {'met' if ok else 'NOT MET'}", file=out)
    print(file=out)
    print(f"Total benchmark time {total:.0f} s.", file=out)

    if args.json is not None:
        payload = {
            "schema": "edgepack.benchmark.backends/v1",
            "date": when.isoformat(timespec="seconds"),
            "machine": info,
            "load_average": {"start": load_before, "end": load_after},
            "versions": {"python": info["python"], **versions},
            "import_seconds": {k: round(v, 3) for k, v in import_seconds.items()},
            "settings": {"runs": args.runs, "warmup": WARMUP, "throughput_batch": BATCH, "runtime": SETTINGS},
            "rows": [asdict(r) for r in rows],
            "targets": targets,
            "total_seconds": round(total, 1),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
