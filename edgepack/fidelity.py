"""The fidelity gate: how far an optimized model drifted from the reference.

Backend-agnostic: it compares two ``Batch``es of outputs (or two predict callables),
whatever produced them. Every metric is computed per output; the overall figure is
the worst output's, so a threshold holds only if it holds for every output.

Metrics:
- ``max_abs_error`` / ``mean_abs_error``: over every element.
- ``cosine_similarity``: mean over samples of the cosine between each sample's
  flattened reference and candidate values. Outputs with one value per sample (a
  score, a regression target) have no per-sample direction: there the cosine is taken
  over the whole output across samples instead.
- ``top1_agreement``: for outputs that look like class scores (rank 2, more than one
  class), the share of samples whose arg-max class agrees.
- ``reference_accuracy`` / ``candidate_accuracy`` / ``accuracy_drop`` (reference minus
  candidate) when labels exist, measured on the output with one score per class of
  ``classes`` (the config's ``model.classes``) when given, else on the first output whose
  classes cover the labels' range. Labels are class ids, one-hot rows, or class names
  (mapped to ids through ``classes``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import Thresholds
from .errors import DataError, EdgepackError, FidelityError
from .model.base import Batch

Predict = Callable[[Batch], Batch]

_SIGNIFICANT_DIGITS = 6


@dataclass(frozen=True)
class OutputMetrics:
    """How one output of the candidate compares with the reference."""

    max_abs_error: float
    mean_abs_error: float
    cosine_similarity: float
    top1_agreement: float | None = None  # None: the output does not look like class scores

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_abs_error": _round(self.max_abs_error),
            "mean_abs_error": _round(self.mean_abs_error),
            "cosine_similarity": _round(self.cosine_similarity),
            "top1_agreement": _round(self.top1_agreement),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputMetrics:
        return cls(
            max_abs_error=_float(data["max_abs_error"]),
            mean_abs_error=_float(data["mean_abs_error"]),
            cosine_similarity=_float(data["cosine_similarity"]),
            top1_agreement=_optional_float(data.get("top1_agreement")),
        )


@dataclass(frozen=True)
class FidelityMetrics(OutputMetrics):
    """The overall figures: the worst output's errors, plus accuracy when labels exist."""

    reference_accuracy: float | None = None
    candidate_accuracy: float | None = None
    accuracy_drop: float | None = None  # reference minus candidate; positive = the candidate is worse

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "reference_accuracy": _round(self.reference_accuracy),
            "candidate_accuracy": _round(self.candidate_accuracy),
            "accuracy_drop": _round(self.accuracy_drop),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FidelityMetrics:
        base = OutputMetrics.from_dict(data)
        return cls(
            max_abs_error=base.max_abs_error,
            mean_abs_error=base.mean_abs_error,
            cosine_similarity=base.cosine_similarity,
            top1_agreement=base.top1_agreement,
            reference_accuracy=_optional_float(data.get("reference_accuracy")),
            candidate_accuracy=_optional_float(data.get("candidate_accuracy")),
            accuracy_drop=_optional_float(data.get("accuracy_drop")),
        )


@dataclass(frozen=True)
class FidelityReport:
    """The gate's verdict on one candidate; ``passed`` when ``failures`` is empty."""

    metrics: FidelityMetrics
    outputs: Mapping[str, OutputMetrics]
    samples: int
    thresholds: Thresholds
    failures: list[str] = field(default_factory=list)
    accuracy_output: str | None = None  # the output accuracy was measured on

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (floats to 6 significant digits; NaN/inf as strings)."""
        return {
            "passed": self.passed,
            "samples": self.samples,
            "metrics": self.metrics.to_dict(),
            "outputs": {name: m.to_dict() for name, m in self.outputs.items()},
            "accuracy_output": self.accuracy_output,
            "thresholds": self.thresholds.model_dump(mode="json"),
            "failures": list(self.failures),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FidelityReport:
        """Read back what ``to_dict`` wrote (e.g. from a manifest)."""
        return cls(
            metrics=FidelityMetrics.from_dict(data["metrics"]),
            outputs={name: OutputMetrics.from_dict(m) for name, m in data["outputs"].items()},
            samples=int(data["samples"]),
            thresholds=Thresholds.model_validate(data.get("thresholds", {})),
            failures=[str(f) for f in data.get("failures", [])],
            accuracy_output=data.get("accuracy_output"),
        )


def evaluate(
    reference: Batch,
    candidate: Batch,
    labels: np.ndarray | None,
    thresholds: Thresholds,
    *,
    classes: Sequence[str] | None = None,
) -> FidelityReport:
    """Compare the candidate's outputs with the reference's and apply the thresholds.

    Both batches map output names to arrays with the samples on the first axis. Raises
    ``FidelityError`` when an output is missing from either side or the shapes differ,
    ``DataError`` when the labels fit no output. ``classes`` (``model.classes``) maps
    class-name labels to ids and picks the output with one score per class.
    """
    _check_outputs(reference, candidate)
    names = list(reference)
    samples = _sample_count(reference)
    outputs: dict[str, OutputMetrics] = {}
    for name in names:
        ref = np.asarray(reference[name], dtype=np.float64)
        cand = np.asarray(candidate[name], dtype=np.float64)
        outputs[name] = _output_metrics(ref, cand)

    accuracy_output = None
    ref_acc = cand_acc = drop = None
    if labels is not None:
        accuracy_output, label_ids = _accuracy_output(reference, labels, samples, classes)
        ref_acc = _accuracy(reference[accuracy_output], label_ids)
        cand_acc = _accuracy(candidate[accuracy_output], label_ids)
        drop = ref_acc - cand_acc

    per_output = list(outputs.values())
    top1 = [m.top1_agreement for m in per_output if m.top1_agreement is not None]
    overall = FidelityMetrics(
        max_abs_error=_worst(max, [m.max_abs_error for m in per_output]),
        mean_abs_error=_worst(max, [m.mean_abs_error for m in per_output]),
        cosine_similarity=_worst(min, [m.cosine_similarity for m in per_output]),
        top1_agreement=_worst(min, top1) if top1 else None,
        reference_accuracy=ref_acc,
        candidate_accuracy=cand_acc,
        accuracy_drop=drop,
    )
    failures = _failures(outputs, overall, thresholds)
    return FidelityReport(
        metrics=overall,
        outputs=outputs,
        samples=samples,
        thresholds=thresholds,
        failures=failures,
        accuracy_output=accuracy_output,
    )


def run_fidelity(
    reference_predict: Predict,
    candidate_predict: Predict,
    dataset_inputs: Batch,
    labels: np.ndarray | None,
    thresholds: Thresholds,
    batch_size: int = 64,
    *,
    classes: Sequence[str] | None = None,
) -> FidelityReport:
    """Run both models on the same inputs, ``batch_size`` samples at a time, and evaluate.

    The callables take and return ``Batch``es with public names; this makes the gate the
    same for every backend (LiteRT, ONNX Runtime, OpenVINO). A candidate that fails on a
    batch raises ``FidelityError`` naming the samples.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if not dataset_inputs:
        raise DataError("validation data has no inputs")
    total = _sample_count(dataset_inputs, what="input")
    if total == 0:
        raise DataError("validation data has no samples")
    reference_chunks: list[Batch] = []
    candidate_chunks: list[Batch] = []
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        feed = {name: array[start:stop] for name, array in dataset_inputs.items()}
        reference_chunks.append(_run("reference", reference_predict, feed, start, stop))
        candidate_chunks.append(_run("candidate", candidate_predict, feed, start, stop))
    return evaluate(_concat(reference_chunks), _concat(candidate_chunks), labels, thresholds, classes=classes)


# -- metrics --------------------------------------------------------------------------


def _output_metrics(ref: np.ndarray, cand: np.ndarray) -> OutputMetrics:
    diff = np.abs(ref - cand)
    if diff.size == 0:
        return OutputMetrics(0.0, 0.0, 1.0, None)
    return OutputMetrics(
        max_abs_error=float(diff.max()),
        mean_abs_error=float(diff.mean()),
        cosine_similarity=_cosine(ref, cand),
        top1_agreement=_top1_agreement(ref, cand),
    )


def _cosine(ref: np.ndarray, cand: np.ndarray) -> float:
    a = ref.reshape(ref.shape[0], -1)
    b = cand.reshape(cand.shape[0], -1)
    if a.shape[1] == 1:
        # One value per sample: a per-sample cosine would only compare signs.
        a, b = a.reshape(1, -1), b.reshape(1, -1)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.nan  # fails every cosine threshold, as it should
    norm_a = np.linalg.norm(a, axis=1)
    norm_b = np.linalg.norm(b, axis=1)
    norms = norm_a * norm_b
    safe = np.where(norms > 0, norms, 1.0)
    # Two all-zero vectors agree perfectly; zero against non-zero does not agree at all.
    cos = np.where(norms > 0, np.sum(a * b, axis=1) / safe, np.where((norm_a == 0) & (norm_b == 0), 1.0, 0.0))
    return float(np.mean(np.clip(cos, -1.0, 1.0)))


def _looks_like_classes(array: np.ndarray) -> bool:
    return array.ndim == 2 and array.shape[1] > 1


def _top1_agreement(ref: np.ndarray, cand: np.ndarray) -> float | None:
    if not _looks_like_classes(ref):
        return None
    if np.isnan(cand).any():
        return math.nan
    return float(np.mean(np.argmax(ref, axis=1) == np.argmax(cand, axis=1)))


def _accuracy(scores: np.ndarray, label_ids: np.ndarray) -> float:
    return float(np.mean(np.argmax(np.asarray(scores, dtype=np.float64), axis=1) == label_ids))


def _accuracy_output(
    reference: Batch, labels: np.ndarray, samples: int, classes: Sequence[str] | None = None
) -> tuple[str, np.ndarray]:
    labels = np.asarray(labels)
    if labels.dtype.kind in "US":
        from .data import label_ids as names_to_ids

        labels = names_to_ids(labels, classes, "validation labels")
    if labels.ndim == 2 and labels.shape[1] > 1:  # one-hot
        label_ids = np.argmax(labels, axis=1)
    elif labels.ndim == 2 and labels.shape[1] == 1:
        label_ids = labels[:, 0]
    elif labels.ndim == 1:
        label_ids = labels
    else:
        raise DataError(f"labels must be class ids (n,) or one-hot (n, classes), got shape {labels.shape}")
    if len(label_ids) != samples:
        raise DataError(f"{len(label_ids)} labels for {samples} validation samples")
    if not np.issubdtype(label_ids.dtype, np.integer):
        if not np.all(np.equal(np.mod(label_ids, 1), 0)):
            raise DataError("labels must be integer class ids")
        label_ids = label_ids.astype(np.int64)
    low, high = int(label_ids.min()), int(label_ids.max())
    if low < 0:
        raise DataError(f"labels must be class ids >= 0, found {low}")
    if classes is not None:
        # The output with exactly one score per named class is the classifier's.
        for name, array in reference.items():
            array = np.asarray(array)
            if _looks_like_classes(array) and array.shape[1] == len(classes) > high:
                return name, label_ids
    for name, array in reference.items():
        array = np.asarray(array)
        if _looks_like_classes(array) and array.shape[1] > high:
            return name, label_ids
    shapes = ", ".join(f"{n} {tuple(np.shape(a))}" for n, a in reference.items())
    raise DataError(
        f"labels range over classes 0..{high} but no output has that many class scores ({shapes})"
    )


def _worst(pick: Callable[[list[float]], float], values: list[float]) -> float:
    # NaN anywhere must win, or a broken output could hide behind a good one.
    if any(math.isnan(v) for v in values):
        return math.nan
    return pick(values)


# -- thresholds -----------------------------------------------------------------------

# metric -> (threshold field, "min" or "max")
_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("top1_agreement", "min_top1_agreement", "min"),
    ("cosine_similarity", "min_cosine_similarity", "min"),
    ("max_abs_error", "max_abs_error", "max"),
    ("mean_abs_error", "max_mean_abs_error", "max"),
)


def _failures(
    outputs: Mapping[str, OutputMetrics], overall: FidelityMetrics, thresholds: Thresholds
) -> list[str]:
    failures: list[str] = []
    several = len(outputs) > 1
    for metric, limit_name, kind in _CHECKS:
        limit = getattr(thresholds, limit_name)
        if limit is None:
            continue
        for name, metrics in outputs.items():
            value = getattr(metrics, metric)
            if value is None:
                continue
            if _violates(value, limit, kind):
                where = f" (output {name})" if several else ""
                failures.append(_failure(metric, value, kind, limit) + where)
    drop, max_drop = overall.accuracy_drop, thresholds.max_accuracy_drop
    # The epsilon lets a drop of exactly the limit pass when float arithmetic gives 0.0100000001.
    if drop is not None and max_drop is not None and _violates(drop, max_drop + 1e-12, "max"):
        failures.append(_failure("accuracy_drop", drop, "max", max_drop))
    return failures


def _violates(value: float, limit: float, kind: str) -> bool:
    # Written so that NaN always violates.
    return not (value >= limit) if kind == "min" else not (value <= limit)


def _failure(metric: str, value: float, kind: str, limit: float) -> str:
    op = "<" if kind == "min" else ">"
    return f"{metric} {_fmt(value)} {op} {kind} {_fmt(limit)}"


def _fmt(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.3f}" if abs(value) >= 1e-2 or value == 0 else f"{value:.4f}"
    return f"{value:.3g}"


# -- plumbing -------------------------------------------------------------------------


def _check_outputs(reference: Batch, candidate: Batch) -> None:
    if not reference:
        raise FidelityError("the reference model produced no outputs")
    missing = [n for n in reference if n not in candidate]
    if missing:
        raise FidelityError(
            f"output {', '.join(missing)} is missing from the optimized model "
            f"(it has {', '.join(candidate) or 'none'})"
        )
    extra = [n for n in candidate if n not in reference]
    if extra:
        raise FidelityError(f"the optimized model has output {', '.join(extra)} that the reference does not")
    for name in reference:
        ref_shape, cand_shape = np.shape(reference[name]), np.shape(candidate[name])
        if ref_shape != cand_shape:
            raise FidelityError(
                f"output {name}: the optimized model gave shape {cand_shape}, the reference {ref_shape}"
            )


def _sample_count(batch: Batch, what: str = "output") -> int:
    counts = {name: (np.shape(a)[0] if np.ndim(a) else 1) for name, a in batch.items()}
    if len(set(counts.values())) > 1:
        raise DataError(f"{what}s disagree on the number of samples: {counts}")
    return next(iter(counts.values()))


def _run(which: str, predict: Predict, feed: Batch, start: int, stop: int) -> Batch:
    try:
        out = predict(feed)
    except EdgepackError:
        raise
    except Exception as e:
        line = " ".join(str(e).split())[:300]
        raise FidelityError(
            f"the {which} model failed on validation samples {start}..{stop - 1}: {type(e).__name__}: {line}"
        ) from e
    for name, array in out.items():
        got = np.shape(array)[0] if np.ndim(array) else None
        if got != stop - start:
            raise FidelityError(
                f"output {name} of the {which} model has {got} rows for {stop - start} samples "
                f"(validation samples {start}..{stop - 1})"
            )
    return dict(out)


def _concat(chunks: list[Batch]) -> Batch:
    names = list(chunks[0])
    for chunk in chunks[1:]:
        if set(chunk) != set(names):
            raise FidelityError(f"a model changed its outputs between batches: {names} then {list(chunk)}")
    return {name: np.concatenate([np.asarray(c[name]) for c in chunks]) for name in names}


def _round(value: float | None) -> float | str | None:
    if value is None:
        return None
    if math.isnan(value) or math.isinf(value):
        return str(value)  # "nan", "inf": strict JSON has no NaN
    return float(f"{value:.{_SIGNIFICANT_DIGITS}g}")


def _float(value: Any) -> float:
    return float(value)  # float("nan") / float("inf") read the strings back


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
