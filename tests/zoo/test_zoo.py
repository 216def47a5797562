"""Every zoo model x every default target: built for real, outcome checked against one table.

The zoo (make_zoo.py) is built once per content key under the pytest cache
(``.pytest_cache/d/edgepack-zoo``) and reused; each case runs ``edgepack.build()`` for one
target into its own directory with the session's shared ``EDGEPACK_CACHE_DIR`` (vendored
wheels reused). ``EXPECTED`` below is the single place that says what each cell should do.

Set ``EDGEPACK_ZOO_OUTCOMES=/path/outcomes.jsonl`` to get one JSON line per cell with the
actual outcome (variant, precision, backend, agreement, or the error line).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from make_zoo import TARGETS, ZOO, ensure_zoo

from edgepack.artifact_files import read_artifact
from edgepack.build import build
from edgepack.errors import EdgepackError

pytestmark = pytest.mark.slow

EPOCH = 1_700_000_000
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class Shipped:
    backend: str
    precisions: tuple[str, ...]  # any of these (the manifest's model.precision) is fine
    mixed: bool = False  # int8 with some layers kept in float by the int8-mixed variant


@dataclass(frozen=True)
class Refused:
    exit_code: int
    needle: str  # the one-line error must contain this (case-insensitive): the op, file or format


TFLITE = Shipped("litert", ("int8",))
OPENVINO = Shipped("openvino", ("int8",))
JETSON = Shipped("onnxruntime", ("int8",))
ORT = Shipped("onnxruntime", ("int8",))  # ONNX sources on Lambda and the Pi: ONNX Runtime


def _row(lam: Any, rpi: Any, ov: Any, trt: Any) -> dict[str, Any]:
    return {
        "lambda-x86_64": lam,
        "lambda-arm64": lam,
        "rpi-tflite": rpi,
        "intel-openvino": ov,
        "jetson-trt": trt,
    }


def _all(outcome: Any) -> dict[str, Any]:
    return _row(outcome, outcome, outcome, outcome)


# What each cell SHOULD do. Adjust here (and only here) as the product decides.
EXPECTED: dict[str, dict[str, Any]] = {
    "keras_sequential": _row(TFLITE, TFLITE, OPENVINO, JETSON),
    "keras_functional_h5": _row(TFLITE, TFLITE, OPENVINO, JETSON),
    "keras_subclassed": _row(TFLITE, TFLITE, OPENVINO, JETSON),
    # A .keras whose class cannot be imported where edgepack runs: one line naming the file.
    "keras_subclassed_keras": _all(Refused(EXIT_BAD_INPUT, "model.keras")),
    "keras_multi_io": _row(TFLITE, TFLITE, OPENVINO, JETSON),
    "savedmodel": _row(TFLITE, TFLITE, OPENVINO, JETSON),
    # int16x8 depthwise is refused by LiteRT 2.3 (TOOLCHAIN): int8, else fp16.
    "mobilenet_like": _row(
        Shipped("litert", ("int8", "fp16")),
        Shipped("litert", ("int8", "fp16")),
        OPENVINO,
        Shipped("onnxruntime", ("int8", "fp16")),
    ),
    # ONNX sources: ONNX Runtime on Lambda and the Pi (TOOLCHAIN: onnx2tf is not a safe automatic path).
    "torch_cnn": _row(ORT, ORT, OPENVINO, JETSON),
    "torch_int64": _row(ORT, ORT, OPENVINO, JETSON),
    # OpenVINO has no ai.onnx.ml ops (skl2onnx writes the label with ArrayFeatureExtractor).
    "sklearn_onnx": _row(ORT, ORT, Refused(EXIT_BAD_INPUT, "ArrayFeatureExtractor"), JETSON),
    "tf_onnx": _row(ORT, ORT, OPENVINO, JETSON),
    # A .tflite ships as it is on LiteRT targets (variant "as-is"); OpenVINO reads TFLite directly;
    # nothing converts a .tflite to ONNX: refused naming the format.
    "tflite_file": _row(
        Shipped("litert", ("fp32",)),
        Shipped("litert", ("fp32",)),
        OPENVINO,
        Refused(EXIT_BAD_INPUT, "tflite"),
    ),
    # Full int8 fails the gate: int8-mixed keeps the outlier layers in float and ships int8.
    # NNCF's accuracy control reverts every layer of this model, which is refused, so fp16 ships.
    "outlier_mlp": _row(
        Shipped("litert", ("int8",), mixed=True),
        Shipped("litert", ("int8",), mixed=True),
        Shipped("openvino", ("fp16",)),
        Shipped("onnxruntime", ("int8",), mixed=True),
    ),
    # No converter takes MatrixSquareRoot: refused with one line naming the op.
    "unsupported_op": _all(Refused(EXIT_BAD_INPUT, "MatrixSquareRoot")),
}

CASES = [(model, target) for model in ZOO for target in TARGETS]


def test_expectation_table_covers_the_zoo() -> None:
    assert set(EXPECTED) == set(ZOO)
    for model, row in EXPECTED.items():
        assert set(row) == set(TARGETS), model


@pytest.fixture(scope="session")
def zoo(request: pytest.FixtureRequest) -> Path:
    return ensure_zoo(Path(request.config.cache.mkdir("edgepack-zoo")))


def build_cell(project: Path, target: str, out: Path) -> dict[str, Any]:
    """Build one target; the outcome as a flat dict (ok, exit_code, error or what shipped)."""
    started = time.perf_counter()
    try:
        result = build(project, out, [target], epoch=EPOCH)
    except EdgepackError as e:  # config, model or data: refused before any target started
        return {
            "ok": False,
            "exit_code": e.exit_code,
            "error": e.hint(),
            "seconds": time.perf_counter() - started,
        }
    (r,) = result.results
    outcome: dict[str, Any] = {
        "ok": r.ok,
        "exit_code": r.exit_code,
        "error": r.error,
        "seconds": time.perf_counter() - started,
    }
    if r.ok and r.artifact is not None:
        _, files = read_artifact(r.artifact, lambda n: n == "edgepack.json")
        manifest = json.loads(files["edgepack.json"])
        metrics = (manifest.get("fidelity") or {}).get("metrics") or {}
        outcome.update(
            manifest_bytes=len(files["edgepack.json"]),
            artifact=str(r.artifact),
            backend=manifest["runtime"]["backend"],
            variant=manifest["model"].get("variant"),
            format=manifest["model"]["format"],
            precision=manifest["model"]["precision"],
            float_ops=(manifest["model"].get("details") or {}).get("float_ops"),
            float_layers=(manifest["model"].get("details") or {}).get("float_layers") or 0,
            top1_agreement=metrics.get("top1_agreement"),
            accuracy_drop=metrics.get("accuracy_drop"),
        )
    return outcome


def _record(model: str, target: str, outcome: dict[str, Any]) -> None:
    path = os.environ.get("EDGEPACK_ZOO_OUTCOMES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"model": model, "target": target, **outcome}, default=str) + "\n")


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("model", "target"), CASES, ids=[f"{m}-{t}" for m, t in CASES])
def test_zoo_cell(model: str, target: str, zoo: Path, tmp_path: Path) -> None:
    outcome = build_cell(zoo / model, target, tmp_path / "dist")
    _record(model, target, outcome)
    expected = EXPECTED[model][target]
    if isinstance(expected, Shipped):
        assert outcome["ok"], f"expected {expected}, got exit {outcome['exit_code']}: {outcome['error']}"
        assert outcome["backend"] == expected.backend, outcome
        assert outcome["precision"] in expected.precisions, outcome
        assert (outcome["float_layers"] > 0) == expected.mixed, outcome
        # The health-check sample lives in its own file: the manifest stays small for every model.
        assert outcome["manifest_bytes"] < 64_000, outcome
    else:
        assert not outcome["ok"], f"expected refusal {expected}, but it shipped: {outcome}"
        error = outcome["error"] or ""
        assert outcome["exit_code"] == expected.exit_code, error
        assert "\n" not in error, f"not one line: {error!r}"
        assert expected.needle.lower() in error.lower(), error
        dist = tmp_path / "dist"
        assert not dist.exists() or not any(dist.iterdir()), "a refused target left files behind"
