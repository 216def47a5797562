"""``edgepack report``: compare the artifacts of a build directory.

For every artifact: sizes (artifact, unpacked, model), latency p50/p99 of its model
measured here with edgepack's runtime on the manifest's sample input, and the
fidelity the build recorded against the original model. With ``project`` the
original model is measured too, as the baseline row.
"""

from __future__ import annotations

import html
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .artifact_files import read_artifact
from .errors import ConfigError, PackagingError
from .runtime.manifest import MANIFEST_FILE
from .runtime.signature import IOSignature

ARTIFACT_PATTERNS = ("*.zip", "*.bundle.tar.gz")
_WARMUP = 10


@dataclass(frozen=True)
class ReportRow:
    name: str  # target name, or "original"
    format: str
    precision: str
    variant: str
    artifact_bytes: int | None
    unpacked_bytes: int | None
    model_bytes: int
    p50_ms: float
    p99_ms: float
    fidelity: dict[str, Any] = field(default_factory=dict)
    backend: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def time_predict(
    predict: Callable[[dict[str, np.ndarray]], Any], inputs: dict[str, np.ndarray], runs: int
) -> tuple[float, float]:
    """p50 and p99 latency in milliseconds over ``runs`` calls, after a warm-up."""
    for _ in range(_WARMUP):
        predict(inputs)
    samples = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        predict(inputs)
        samples[i] = (time.perf_counter() - start) * 1e3
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 99))


def measure_artifact(artifact: Path, runs: int) -> ReportRow:
    from .build import host_predictor
    from .runtime.sample import SAMPLE_FILE, read_sample

    sizes, files = read_artifact(
        artifact, lambda n: n in (MANIFEST_FILE, SAMPLE_FILE) or n.startswith("model/")
    )
    if MANIFEST_FILE not in files:
        raise PackagingError(f"{artifact}: no {MANIFEST_FILE}; not an edgepack artifact")
    manifest = json.loads(files.pop(MANIFEST_FILE))
    model = manifest["model"]
    with tempfile.TemporaryDirectory(prefix="edgepack-report-") as tmp:
        for name, data in files.items():
            dest = Path(tmp) / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        predictor = host_predictor(
            manifest["runtime"]["backend"],
            Path(tmp) / model["file"],
            manifest["runtime"].get("settings", {}),
            IOSignature.from_dict(model["signature"]),
            tuple(model.get("native_inputs") or ()),
            tuple(model.get("native_outputs") or ()),
        )
        sample, _ = read_sample(Path(tmp), manifest["sample"])
        p50, p99 = time_predict(predictor.predict, sample, runs)
        description = predictor.backend.describe()
    fidelity = dict(manifest.get("fidelity", {}).get("metrics") or {})
    return ReportRow(
        name=manifest["target"]["name"],
        format=model["format"],
        precision=model["precision"],
        variant=model.get("variant", ""),
        artifact_bytes=artifact.stat().st_size,
        unpacked_bytes=sum(sizes.values()),
        model_bytes=sum(size for n, size in sizes.items() if n.startswith("model/")),
        p50_ms=p50,
        p99_ms=p99,
        fidelity=fidelity,
        backend=str(
            description.get("library") or description.get("backend") or manifest["runtime"]["backend"]
        ),
    )


def measure_original(project_dir: Path, runs: int) -> ReportRow:
    from .config import load_project
    from .data import load_dataset
    from .model.loader import load_model

    project = load_project(project_dir)
    pf = project.file
    source = load_model(project.model_path, pf.model.format, pf.model.inputs, pf.model.outputs)
    spec = pf.validation or pf.calibration
    if spec is None:
        raise ConfigError("the project has no validation or calibration data to time the original model with")
    field_name = "validation" if pf.validation is not None else "calibration"
    data = load_dataset(
        spec,
        project.root,
        source.artifact.signature,
        f"{project.config_path}: {field_name}",
        classes=project.classes,
    )
    sample = {k: v[:1] for k, v in data.inputs.items()}
    p50, p99 = time_predict(source.predict, sample, runs)
    path = project.model_path
    size = (
        path.stat().st_size
        if path.is_file()
        else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    )
    fidelity: dict[str, Any] = {}
    if pf.validation is not None and data.labels is not None:
        outputs = source.predict(data.inputs)
        first = outputs[source.artifact.signature.outputs[0].name]
        fidelity["reference_accuracy"] = float(np.mean(np.argmax(first, axis=-1) == data.labels))
    return ReportRow(
        name="original",
        format=source.artifact.format,
        precision="fp32",
        variant="-",
        artifact_bytes=None,
        unpacked_bytes=None,
        model_bytes=size,
        p50_ms=p50,
        p99_ms=p99,
        fidelity=fidelity,
        backend=source.artifact.format,
    )


def _plot(rows: list[ReportRow], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in rows]
    charts = [
        ("size.png", "model size (KB)", [r.model_bytes / 1e3 for r in rows]),
        ("latency.png", "latency p50 (ms), batch 1, this machine", [r.p50_ms for r in rows]),
        (
            "accuracy.png",
            "accuracy on validation data",
            [
                r.fidelity.get("candidate_accuracy", r.fidelity.get("reference_accuracy", 0.0)) or 0.0
                for r in rows
            ],
        ),
    ]
    written = []
    for filename, title, values in charts:
        fig, ax = plt.subplots(figsize=(7, 3.2))
        bars = ax.barh(names, values, color="#3b6ea8")
        ax.bar_label(bars, fmt="%.3g", padding=3)
        ax.set_title(title)
        ax.invert_yaxis()
        ax.margins(x=0.2)
        fig.tight_layout()
        fig.savefig(out / filename, dpi=110)
        plt.close(fig)
        written.append(filename)
    return written


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _html(rows: list[ReportRow], images: list[str], dist: Path) -> str:
    head = (
        "<tr><th>target</th><th>variant</th><th>format/precision</th><th>backend</th><th>artifact</th>"
        "<th>unpacked</th><th>model</th><th>p50 ms</th><th>p99 ms</th><th>top-1 agreement</th>"
        "<th>accuracy</th><th>accuracy drop</th><th>max abs error</th></tr>"
    )
    body = []
    for r in rows:
        f = r.fidelity
        cells = [
            r.name,
            r.variant,
            f"{r.format}/{r.precision}",
            r.backend,
            _fmt(r.artifact_bytes and r.artifact_bytes / 1e6, ".2f") + " MB" if r.artifact_bytes else "-",
            _fmt(r.unpacked_bytes and r.unpacked_bytes / 1e6, ".1f") + " MB" if r.unpacked_bytes else "-",
            f"{r.model_bytes / 1e3:.1f} KB",
            f"{r.p50_ms:.3f}",
            f"{r.p99_ms:.3f}",
            _fmt(f.get("top1_agreement"), ".4f"),
            _fmt(f.get("candidate_accuracy", f.get("reference_accuracy")), ".4f"),
            _fmt(f.get("accuracy_drop"), "+.4f"),
            _fmt(f.get("max_abs_error"), ".2e"),
        ]
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    imgs = "".join(f'<img src="{html.escape(i)}" alt="{html.escape(i)}">' for i in images)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgepack report: {html.escape(str(dist))}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}
img{{display:block;margin:1em 0}}</style></head><body>
<h1>edgepack report</h1>
<p>Artifacts in <code>{html.escape(str(dist))}</code>. Latency: batch 1, the manifest's sample input,
measured on this machine with edgepack's runtime (the host's build of each backend). Fidelity: recorded
by the build against the original model on the validation data.</p>
<table>{head}{"".join(body)}</table>
{imgs}
</body></html>
"""


def write_report(dist: Path, out: Path, *, runs: int = 200, project: Path | None = None) -> Path:
    """Measure every artifact in ``dist`` and write ``out/index.html``, ``report.json`` and plots."""
    artifacts = sorted({p for pattern in ARTIFACT_PATTERNS for p in Path(dist).glob(pattern)})
    if not artifacts:
        raise ConfigError(f"no artifacts ({', '.join(ARTIFACT_PATTERNS)}) found", where=str(dist))
    rows = [measure_original(project, runs)] if project is not None else []
    rows += [measure_artifact(a, runs) for a in artifacts]
    staging = Path(
        tempfile.mkdtemp(prefix=".report-", dir=Path(out).parent if Path(out).parent.exists() else None)
    )
    try:
        images = _plot(rows, staging)
        (staging / "report.json").write_text(json.dumps([r.to_dict() for r in rows], indent=2) + "\n")
        (staging / "index.html").write_text(_html(rows, images, dist), encoding="utf-8")
        if Path(out).exists():
            shutil.rmtree(out)
        shutil.move(str(staging), out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Path(out) / "index.html"
