"""The fidelity gate's arithmetic, on arrays small enough to check by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgepack.config import Thresholds
from edgepack.errors import DataError, FidelityError, ModelError
from edgepack.fidelity import FidelityReport, evaluate, run_fidelity
from edgepack.model.base import Batch

NO_LIMITS = Thresholds(
    min_top1_agreement=None,
    max_accuracy_drop=None,
    min_cosine_similarity=None,
    max_abs_error=None,
    max_mean_abs_error=None,
)
STRICT = Thresholds(
    min_top1_agreement=0.98,
    max_accuracy_drop=0.01,
    min_cosine_similarity=0.99,
    max_abs_error=0.5,
    max_mean_abs_error=0.1,
)

# Two samples, two classes. Sample 0: cos = 1/sqrt(5) and the top class flips;
# sample 1: same direction (cos = 1), same class. |diff| = [[0, 2], [0, 1]].
REFERENCE = {"probs": np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)}
CANDIDATE = {"probs": np.array([[1.0, 2.0], [0.0, 2.0]], dtype=np.float32)}
EXPECTED_COSINE = (1 / math.sqrt(5) + 1) / 2


def test_identical_outputs_are_perfect() -> None:
    rng = np.random.default_rng(0)
    ref = {"probs": rng.random((20, 5)), "score": rng.random((20, 1))}
    report = evaluate(ref, {k: v.copy() for k, v in ref.items()}, None, STRICT)
    assert report.passed and report.failures == []
    m = report.metrics
    assert (m.max_abs_error, m.mean_abs_error, m.top1_agreement) == (0.0, 0.0, 1.0)
    assert m.cosine_similarity == pytest.approx(1.0)
    assert m.reference_accuracy is None and m.accuracy_drop is None
    assert report.samples == 20
    assert set(report.outputs) == {"probs", "score"}


def test_known_errors_give_exact_values() -> None:
    report = evaluate(REFERENCE, CANDIDATE, None, NO_LIMITS)
    m = report.outputs["probs"]
    assert m.max_abs_error == 2.0
    assert m.mean_abs_error == 0.75
    assert m.cosine_similarity == pytest.approx(EXPECTED_COSINE, abs=1e-12)
    assert m.top1_agreement == 0.5
    assert report.metrics.max_abs_error == 2.0
    assert report.passed  # no thresholds, nothing checked


def test_candidate_dtype_does_not_matter() -> None:
    """An int8 model's outputs dequantized to float16 still compare in float64."""
    as_half = {"probs": CANDIDATE["probs"].astype(np.float16)}
    assert evaluate(REFERENCE, as_half, None, NO_LIMITS).outputs["probs"].mean_abs_error == 0.75


def test_one_value_per_sample_compares_across_samples() -> None:
    """A per-sample cosine of scalars only compares signs; over the batch it measures the fit."""
    ref = {"score": np.array([[1.0], [2.0], [-3.0]])}
    cand = {"score": np.array([[1.0], [2.0], [3.0]])}
    m = evaluate(ref, cand, None, NO_LIMITS).outputs["score"]
    assert m.cosine_similarity == pytest.approx((1 + 4 - 9) / 14)
    assert m.top1_agreement is None  # a score is not a class distribution


def test_zero_vectors() -> None:
    ref = {"v": np.array([[0.0, 0.0], [1.0, 0.0]])}
    cand = {"v": np.array([[0.0, 0.0], [0.0, 0.0]])}
    # Both zero: they agree; one zero: no direction in common.
    assert evaluate(ref, cand, None, NO_LIMITS).outputs["v"].cosine_similarity == 0.5


@pytest.mark.parametrize("shape", [(6,), (6, 1), (6, 2, 3)])
def test_top1_only_for_class_scores(shape: tuple[int, ...]) -> None:
    ref = {"y": np.ones(shape)}
    assert evaluate(ref, ref, None, NO_LIMITS).outputs["y"].top1_agreement is None


def test_overall_is_the_worst_output() -> None:
    ref = {"a": np.eye(4), "b": np.eye(4)}
    cand = {"a": np.eye(4) + 0.1, "b": np.eye(4)[[1, 0, 2, 3]]}
    report = evaluate(ref, cand, None, NO_LIMITS)
    assert report.outputs["a"].top1_agreement == 1.0
    assert report.outputs["b"].top1_agreement == 0.5
    assert report.metrics.top1_agreement == 0.5
    assert report.metrics.max_abs_error == 1.0  # from b
    assert report.metrics.cosine_similarity == report.outputs["b"].cosine_similarity


# -- labels -----------------------------------------------------------------------------

REF3 = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]])
CAND3 = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1]])
LABELS = np.array([0, 1, 2, 2])


def test_accuracy_from_labels() -> None:
    report = evaluate({"p": REF3}, {"p": CAND3}, LABELS, NO_LIMITS)
    m = report.metrics
    assert (m.reference_accuracy, m.candidate_accuracy, m.accuracy_drop) == (0.75, 0.5, 0.25)
    assert report.accuracy_output == "p"


def test_one_hot_and_column_labels_are_the_same_labels() -> None:
    for labels in (np.eye(3)[LABELS], LABELS.reshape(-1, 1), LABELS.astype(np.float64)):
        assert evaluate({"p": REF3}, {"p": CAND3}, labels, NO_LIMITS).metrics.accuracy_drop == 0.25


def test_accuracy_uses_the_first_output_whose_classes_cover_the_labels() -> None:
    n = len(LABELS)
    ref = {"score": np.zeros((n, 1)), "two": np.zeros((n, 2)), "three": REF3, "five": np.zeros((n, 5))}
    report = evaluate(ref, {**ref, "three": CAND3}, LABELS, NO_LIMITS)
    assert report.accuracy_output == "three"
    assert report.metrics.accuracy_drop == 0.25
    report = evaluate(ref, ref, np.array([0, 1, 4, 3]), NO_LIMITS)
    assert report.accuracy_output == "five"


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([0, 1, 2]), "3 labels for 4 validation samples"),
        (
            np.array([0, 1, 2, 7]),
            "labels range over classes 0..7 but no output has that many class scores (p (4, 3))",
        ),
        (np.array([0, -1, 2, 2]), "labels must be class ids >= 0, found -1"),
        (np.array([0.5, 1, 2, 2]), "labels must be integer class ids"),
    ],
)
def test_labels_that_fit_no_output_are_a_data_error(labels: np.ndarray, message: str) -> None:
    with pytest.raises(DataError) as info:
        evaluate({"p": REF3}, {"p": REF3}, labels, NO_LIMITS)
    assert info.value.hint() == message


# -- thresholds -------------------------------------------------------------------------


def test_every_failed_threshold_is_reported_with_value_and_limit() -> None:
    labels = np.array([0, 1])  # reference right on both, candidate right on one
    report = evaluate(REFERENCE, CANDIDATE, labels, STRICT)
    assert not report.passed
    assert report.failures == [
        "top1_agreement 0.500 < min 0.980",
        "cosine_similarity 0.724 < min 0.990",
        "max_abs_error 2.000 > max 0.500",
        "mean_abs_error 0.750 > max 0.100",
        "accuracy_drop 0.500 > max 0.010",
    ]


def test_failures_name_the_output_when_there_are_several() -> None:
    ref = {**REFERENCE, "other": REFERENCE["probs"]}
    report = evaluate(
        ref, {**CANDIDATE, "other": REFERENCE["probs"]}, None, Thresholds(min_cosine_similarity=None)
    )
    assert report.failures == ["top1_agreement 0.500 < min 0.980 (output probs)"]


def test_unset_thresholds_are_not_checked() -> None:
    assert evaluate(REFERENCE, CANDIDATE, np.array([0, 1]), NO_LIMITS).passed


def test_accuracy_drop_exactly_at_the_limit_passes() -> None:
    n = 100
    labels = np.arange(n) % 2
    ref = np.eye(2)[labels]
    ref[:3] = ref[:3, ::-1]  # reference: 97 right
    cand = ref.copy()
    cand[3] = cand[3, ::-1]  # candidate: 96 right; 0.97 - 0.96 is 0.010000000000000009 in floats
    report = evaluate({"p": ref}, {"p": cand}, labels, Thresholds(min_top1_agreement=0.98))
    assert report.metrics.accuracy_drop == pytest.approx(0.01)
    assert report.passed, report.failures


def test_a_better_candidate_has_a_negative_drop() -> None:
    report = evaluate(
        {"p": CAND3}, {"p": REF3}, LABELS, Thresholds(min_top1_agreement=None, min_cosine_similarity=None)
    )
    assert report.metrics.accuracy_drop == -0.25
    assert report.passed


def test_nan_output_fails_every_check_it_touches() -> None:
    cand = {"probs": np.array([[np.nan, 0.0], [0.0, 1.0]])}
    report = evaluate(REFERENCE, cand, None, Thresholds(min_top1_agreement=0.5, min_cosine_similarity=0.0))
    assert math.isnan(report.metrics.cosine_similarity)
    assert report.failures == ["top1_agreement nan < min 0.500", "cosine_similarity nan < min 0.000"]


# -- names and shapes -------------------------------------------------------------------


def test_missing_output_is_named() -> None:
    with pytest.raises(
        FidelityError, match="output probs is missing from the optimized model \\(it has logits\\)"
    ):
        evaluate(REFERENCE, {"logits": CANDIDATE["probs"]}, None, NO_LIMITS)


def test_extra_output_is_named() -> None:
    with pytest.raises(FidelityError, match="has output extra that the reference does not"):
        evaluate(REFERENCE, {**CANDIDATE, "extra": CANDIDATE["probs"]}, None, NO_LIMITS)


def test_shape_mismatch_is_named() -> None:
    with pytest.raises(
        FidelityError, match=r"output probs: the optimized model gave shape \(2, 1\), the reference \(2, 2\)"
    ):
        evaluate(REFERENCE, {"probs": np.zeros((2, 1))}, None, NO_LIMITS)


# -- serialisation ----------------------------------------------------------------------


def test_to_dict_is_strict_json_and_reads_back() -> None:
    report = evaluate(REFERENCE, CANDIDATE, np.array([0, 1]), STRICT)
    data = report.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert data["passed"] is False
    assert data["samples"] == 2
    assert data["metrics"]["cosine_similarity"] == 0.723607  # six significant digits
    assert data["metrics"]["accuracy_drop"] == 0.5
    assert data["outputs"]["probs"]["top1_agreement"] == 0.5
    assert data["accuracy_output"] == "probs"
    assert data["thresholds"]["min_top1_agreement"] == 0.98
    assert data["failures"] == report.failures

    again = FidelityReport.from_dict(json.loads(text))
    assert again.to_dict() == data
    assert not again.passed
    assert again.thresholds == STRICT


def test_small_errors_keep_their_digits_and_nan_survives() -> None:
    ref = {"y": np.array([[1.0, 2.0]])}
    small = evaluate(ref, {"y": np.array([[1.0, 2.0 + 1.234567891e-7]])}, None, NO_LIMITS).to_dict()
    assert small["metrics"]["max_abs_error"] == pytest.approx(1.23457e-07, rel=1e-5)

    broken = evaluate(ref, {"y": np.array([[np.nan, 2.0]])}, None, NO_LIMITS)
    data = broken.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["metrics"]["cosine_similarity"] == "nan"
    assert math.isnan(FidelityReport.from_dict(data).metrics.cosine_similarity)


# -- run_fidelity -----------------------------------------------------------------------


def _double(batch: Batch) -> Batch:
    return {"y": np.concatenate([batch["a"], batch["b"]], axis=1) * 2.0}


def test_run_fidelity_batches_both_models_over_the_same_inputs() -> None:
    rng = np.random.default_rng(1)
    inputs = {"a": rng.random((10, 2)), "b": rng.random((10, 3))}
    seen: list[int] = []

    def candidate(batch: Batch) -> Batch:
        seen.append(len(batch["a"]))
        return {"y": _double(batch)["y"].astype(np.float16)}

    report = run_fidelity(_double, candidate, inputs, None, NO_LIMITS, batch_size=3)
    assert seen == [3, 3, 3, 1]
    whole = evaluate(_double(inputs), {"y": _double(inputs)["y"].astype(np.float16)}, None, NO_LIMITS)
    assert report.to_dict() == whole.to_dict()
    assert report.samples == 10


def test_run_fidelity_names_the_samples_a_candidate_failed_on() -> None:
    inputs = {"a": np.zeros((7, 2)), "b": np.zeros((7, 3))}

    def candidate(batch: Batch) -> Batch:
        if len(batch["a"]) < 3:
            raise RuntimeError("tensor shape\nmismatch")
        return _double(batch)

    with pytest.raises(FidelityError) as info:
        run_fidelity(_double, candidate, inputs, None, NO_LIMITS, batch_size=3)
    assert info.value.hint() == (
        "the candidate model failed on validation samples 6..6: RuntimeError: tensor shape mismatch"
    )


def test_run_fidelity_checks_rows_and_keeps_edgepack_errors() -> None:
    inputs = {"a": np.zeros((4, 2)), "b": np.zeros((4, 3))}
    with pytest.raises(FidelityError, match="output y of the candidate model has 1 rows for 4 samples"):
        run_fidelity(_double, lambda b: {"y": np.zeros((1, 5))}, inputs, None, NO_LIMITS, batch_size=8)

    def broken(batch: Batch) -> Batch:
        raise ModelError("model.onnx: cannot load")

    with pytest.raises(ModelError):
        run_fidelity(_double, broken, inputs, None, NO_LIMITS)


def test_run_fidelity_needs_samples() -> None:
    with pytest.raises(DataError, match="no samples"):
        run_fidelity(_double, _double, {"a": np.zeros((0, 2)), "b": np.zeros((0, 3))}, None, NO_LIMITS)
