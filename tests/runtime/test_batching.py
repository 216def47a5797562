"""Dynamic batching on real models: merged calls answer exactly as unbatched ones.

Which requests share a model call is made deterministic without timing: a gate holds the
first model call open while the test queues the others (``queue_depth`` says when they
are all waiting), so they merge when it opens. Calls are counted from the Predictor's
own ``inference`` telemetry events. No test asserts a duration.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from runtime_helpers import Models, write_artifact

from edgepack.runtime.backends import load_backend
from edgepack.runtime.batching import (
    MAX_BATCH_SIZE_LIMIT,
    BatchingSettings,
    DynamicBatcher,
    batcher_from_settings,
    parse_batching,
)
from edgepack.runtime.dataplane import DataPlane
from edgepack.runtime.errors import BadRequestError, InferenceError, ModelLoadError
from edgepack.runtime.predictor import Predictor
from edgepack.runtime.signature import IOSignature, TensorSpec
from edgepack.runtime.telemetry import ERROR, INFERENCE, TelemetryEvent

WAIT_S = 30  # only ever reached when a test fails: nothing is timed


class Events:
    """A telemetry sink keeping every event."""

    def __init__(self) -> None:
        self.events: list[TelemetryEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: TelemetryEvent) -> None:
        with self._lock:
            self.events.append(event)

    def batch_sizes(self) -> list[int]:
        return [e.fields["batch_size"] for e in self.events if e.name == INFERENCE]

    def named(self, name: str) -> list[TelemetryEvent]:
        return [e for e in self.events if e.name == name]


class GatedBackend:
    """The real backend, with its first call held until ``release`` is set."""

    def __init__(self, inner: Any, fail_when: Callable[[int], bool] | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.signature = inner.signature
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_when = fail_when
        self._calls = 0
        self._lock = threading.Lock()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            self._calls += 1
            first = self._calls == 1
        if first:
            self.entered.set()
            assert self.release.wait(WAIT_S), "gate never released"
        rows = len(next(iter(feeds.values())))
        if self.fail_when is not None and self.fail_when(rows):
            raise RuntimeError(f"injected failure at batch {rows}")
        result: dict[str, np.ndarray] = self.inner.run(feeds)
        return result

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = self.inner.describe()
        return info


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        time.sleep(0.001)


def gated(
    batcher: DynamicBatcher, first: Mapping[str, Any], queued: list[Mapping[str, Any]]
) -> tuple[dict[str, np.ndarray], list[Any]]:
    """Run ``first`` (held in the model), queue ``queued`` behind it, open the gate.

    Returns the first answer and, per queued request, its answer or the exception raised.
    """
    gate = batcher.predictor.backend
    assert isinstance(gate, GatedBackend)

    def call(inputs: Mapping[str, Any]) -> Any:
        try:
            return batcher.predict(inputs)
        except Exception as e:
            return e

    with ThreadPoolExecutor(len(queued) + 1) as pool:
        head = pool.submit(batcher.predict, first)
        assert gate.entered.wait(WAIT_S)
        futures = []
        for inputs in queued:  # one by one, so the queue order is the list's
            depth = batcher.queue_depth()
            futures.append(pool.submit(call, inputs))
            wait_until(lambda d=depth: batcher.queue_depth() == d + 1)
        gate.release.set()
        return head.result(WAIT_S), [f.result(WAIT_S) for f in futures]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def fp32(fp32_artifact: Path, events: Events) -> Predictor:
    predictor = Predictor.from_artifact(fp32_artifact)
    predictor.telemetry.add_sink(events)
    return predictor


@pytest.fixture
def gated_fp32(fp32: Predictor) -> Predictor:
    fp32.backend = GatedBackend(fp32.backend)
    return fp32


def images(models: Models, start: int, rows: int) -> dict[str, np.ndarray]:
    return {"image": models.images[start : start + rows]}


# -- a model with a dynamic second axis, and an MLP: ONNX, built with onnx.helper ---------


def onnx_model(path: Path, kind: str) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    if kind in ("rowmax", "rowsum"):  # x (batch, n) -> y (batch, 1), reduced over n: any n goes
        if kind == "rowmax":  # opset 17: ReduceMax takes its axes as an attribute
            nodes = [helper.make_node("ReduceMax", ["x"], ["y"], axes=[1], keepdims=1)]
            init = []
        else:
            nodes = [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=1)]
            init = [numpy_helper.from_array(np.array([1], np.int64), "axes")]
        x_shape: list[Any] = ["batch", "n"]
        y_shape: list[Any] = ["batch", 1]
    elif kind == "mlp":  # x (batch, 64) -> relu(x W1 + b1) W2 + b2 -> y (batch, 10)
        w1 = rng.standard_normal((64, 128)).astype(np.float32) / 8
        w2 = rng.standard_normal((128, 10)).astype(np.float32) / 8
        nodes = [
            helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("Gemm", ["r", "w2", "b2"], ["y"]),
        ]
        init = [
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(rng.standard_normal(128).astype(np.float32), "b1"),
            numpy_helper.from_array(w2, "w2"),
            numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "b2"),
        ]
        x_shape, y_shape = ["batch", 64], ["batch", 10]
    else:  # "fixed": x (1, 4) -> y (1, 4), no batch axis to merge on
        nodes = [helper.make_node("Relu", ["x"], ["y"])]
        init = []
        x_shape, y_shape = [1, 4], [1, 4]
    graph = helper.make_graph(
        nodes,
        kind,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        initializer=init,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def onnx_predictor(tmp_path: Path, kind: str) -> Predictor:
    backend = load_backend("onnxruntime", onnx_model(tmp_path / f"{kind}.onnx", kind), {"threads": 1})
    return Predictor(backend, backend.signature)


# -- results ------------------------------------------------------------------------------


def burst(batcher: DynamicBatcher, requests: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """All requests at once, one thread each."""
    barrier = threading.Barrier(len(requests))

    def call(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        barrier.wait(WAIT_S)
        return batcher.predict(inputs)

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(call, requests))


@pytest.mark.parametrize("threads", [8, 16])
def test_concurrent_answers_equal_unbatched_litert(
    fp32: Predictor, tflite_models: Models, events: Events, threads: int
) -> None:
    # 1 to 3 rows each, so merged batches mix request sizes.
    requests = [images(tflite_models, 7 * i, 1 + i % 3) for i in range(threads)]
    expected = [fp32.predict(r)["probabilities"] for r in requests]
    batcher = DynamicBatcher(fp32, max_batch_size=16, max_queue_delay_ms=20)
    events.events.clear()
    for _ in range(3):
        answers = burst(batcher, requests)
        for request, answer, want in zip(requests, answers, expected, strict=True):
            assert list(answer) == ["probabilities"]
            assert answer["probabilities"].shape == (len(request["image"]), 10)
            # LiteRT's kernels compute each row alike at any batch size: bitwise equal.
            assert np.array_equal(answer["probabilities"], want)
    assert sum(events.batch_sizes()) == 3 * sum(len(r["image"]) for r in requests)
    assert all(size <= 16 for size in events.batch_sizes())


def test_int8_model_merged_equals_unbatched(int8_artifact: Path, tflite_models: Models) -> None:
    # Quantizing the merged float batch is element-wise: the same int8 input rows.
    predictor = Predictor.from_artifact(int8_artifact)
    requests = [images(tflite_models, 11 * i, 1 + i % 2) for i in range(12)]
    expected = [predictor.predict(r)["probabilities"] for r in requests]
    answers = burst(DynamicBatcher(predictor, max_batch_size=8, max_queue_delay_ms=20), requests)
    for answer, want in zip(answers, expected, strict=True):
        assert np.array_equal(answer["probabilities"], want)


def test_onnxruntime_mlp_merged_answers(tmp_path: Path) -> None:
    predictor = onnx_predictor(tmp_path, "mlp")
    rng = np.random.default_rng(1)
    requests = [{"x": rng.standard_normal((1 + i % 3, 64)).astype(np.float32)} for i in range(16)]
    expected = [predictor.predict(r)["y"] for r in requests]
    answers = burst(DynamicBatcher(predictor, max_batch_size=16, max_queue_delay_ms=20), requests)
    for answer, want in zip(answers, expected, strict=True):
        assert answer["y"].shape == want.shape
        # ONNX Runtime's CPU GEMM (MLAS) gave bitwise-equal rows at every batch size in this
        # model and build (onnxruntime 1.32 on x86-64); if a kernel ever differs by batch size,
        # this is where it shows, and it must be reported, not loosened here.
        assert np.array_equal(answer["y"], want)


def test_onnxruntime_reducesum_differs_within_rounding(tmp_path: Path) -> None:
    """Not bitwise: ONNX Runtime's ReduceSum depends on where the row sits in memory.

    Observed (onnxruntime 1.32, x86-64): the same (1, 5) row summed from a buffer at a
    different alignment differs in the last bit (1.0256081 vs 1.0256079), unbatched as
    well; inside a merged batch each row sits at another offset, so merged answers differ
    from unbatched ones by rounding: at most 9.5e-7 absolute, 1.05 x eps32 x sum|x| over
    30 bursts here. Asserted: within float32 summation's error bound, (n - 1) eps sum|x|.
    """
    predictor = onnx_predictor(tmp_path, "rowsum")
    rng = np.random.default_rng(3)
    requests = [{"x": rng.standard_normal((1 + i % 2, 5)).astype(np.float32)} for i in range(16)]
    expected = [predictor.predict(r)["y"] for r in requests]
    answers = burst(DynamicBatcher(predictor, max_batch_size=16, max_queue_delay_ms=20), requests)
    eps = float(np.finfo(np.float32).eps)
    for request, answer, want in zip(requests, answers, expected, strict=True):
        bound = 4 * eps * np.abs(request["x"]).sum(axis=1, keepdims=True)
        assert bool(np.all(np.abs(answer["y"] - want) <= bound))


# -- how batches form ---------------------------------------------------------------------


def test_requests_queued_behind_a_call_merge_into_one(
    gated_fp32: Predictor, tflite_models: Models, events: Events
) -> None:
    batcher = DynamicBatcher(gated_fp32, max_batch_size=8, max_queue_delay_ms=0)
    queued = [images(tflite_models, i, 1) for i in range(8)]
    first, answers = gated(batcher, images(tflite_models, 100, 1), queued)
    assert events.batch_sizes() == [1, 8]
    assert batcher.stats() == {"batches": 2, "requests": 9, "mean_requests": 4.5}
    assert np.array_equal(
        np.concatenate([a["probabilities"] for a in answers]),
        gated_fp32.predict({"image": tflite_models.images[:8]})["probabilities"],
    )
    assert first["probabilities"].shape == (1, 10)


def test_max_batch_size_splits_the_queue_in_order(
    gated_fp32: Predictor, tflite_models: Models, events: Events
) -> None:
    batcher = DynamicBatcher(gated_fp32, max_batch_size=4, max_queue_delay_ms=0)
    queued = [images(tflite_models, i, 1) for i in range(10)]
    _, answers = gated(batcher, images(tflite_models, 100, 1), queued)
    assert events.batch_sizes() == [1, 4, 4, 2]
    for i, answer in enumerate(answers):
        assert np.array_equal(answer["probabilities"], gated_fp32.predict(queued[i])["probabilities"])


def test_a_request_that_does_not_fit_waits_for_the_next_batch(
    gated_fp32: Predictor, tflite_models: Models, events: Events
) -> None:
    # 3 + 3 rows exceed 4: the second goes alone, after the first; no later request jumps it.
    batcher = DynamicBatcher(gated_fp32, max_batch_size=4, max_queue_delay_ms=0)
    queued = [images(tflite_models, 0, 3), images(tflite_models, 3, 3), images(tflite_models, 6, 1)]
    _, answers = gated(batcher, images(tflite_models, 100, 1), queued)
    assert events.batch_sizes() == [1, 3, 4]
    assert [a["probabilities"].shape[0] for a in answers] == [3, 3, 1]


def test_two_concurrent_batches_run_side_by_side(
    gated_fp32: Predictor, tflite_models: Models, events: Events
) -> None:
    # The first call is held in the model; with room for two calls, the next runs meanwhile.
    batcher = DynamicBatcher(gated_fp32, max_batch_size=8, max_queue_delay_ms=0, max_concurrent_batches=2)
    gate = gated_fp32.backend
    assert isinstance(gate, GatedBackend)
    with ThreadPoolExecutor(2) as pool:
        held = pool.submit(batcher.predict, images(tflite_models, 100, 1))
        assert gate.entered.wait(WAIT_S)
        second = batcher.predict(images(tflite_models, 0, 2))  # returns while the first is held
        assert not held.done()
        gate.release.set()
        first = held.result(WAIT_S)
    assert events.batch_sizes() == [2, 1]
    assert np.array_equal(
        second["probabilities"], gated_fp32.predict(images(tflite_models, 0, 2))["probabilities"]
    )
    assert first["probabilities"].shape == (1, 10)


def test_one_batch_at_a_time_by_default(gated_fp32: Predictor, tflite_models: Models, events: Events) -> None:
    batcher = DynamicBatcher(gated_fp32, max_batch_size=8, max_queue_delay_ms=0)
    _, answers = gated(batcher, images(tflite_models, 100, 1), [images(tflite_models, 0, 2)])
    assert events.batch_sizes() == [1, 2]  # the second waited for the first call to end
    assert answers[0]["probabilities"].shape == (2, 10)


@pytest.mark.parametrize("concurrent", [1, 2, 4])
def test_concurrent_batches_answer_as_unbatched(
    fp32: Predictor, tflite_models: Models, concurrent: int
) -> None:
    requests = [images(tflite_models, 5 * i, 1 + i % 3) for i in range(16)]
    expected = [fp32.predict(r)["probabilities"] for r in requests]
    batcher = DynamicBatcher(fp32, max_batch_size=6, max_queue_delay_ms=1, max_concurrent_batches=concurrent)
    for _ in range(3):
        for answer, want in zip(burst(batcher, requests), expected, strict=True):
            assert np.array_equal(answer["probabilities"], want)
    assert batcher.queue_depth() == 0


def test_a_request_larger_than_max_batch_size_runs_alone(
    fp32: Predictor, tflite_models: Models, events: Events
) -> None:
    batcher = DynamicBatcher(fp32, max_batch_size=4, max_queue_delay_ms=60_000)
    request = images(tflite_models, 0, 10)
    answer = batcher.predict(request)  # full at once: no wait for company
    assert events.batch_sizes() == [10]
    assert np.array_equal(answer["probabilities"], fp32.predict(request)["probabilities"])


def test_leader_waits_for_more_requests_until_the_batch_is_full(
    fp32: Predictor, tflite_models: Models, events: Events
) -> None:
    # A delay far longer than the test: requests arriving one after another, each after the
    # previous one is queued, still share one call, which runs as soon as it is full.
    batcher = DynamicBatcher(fp32, max_batch_size=4, max_queue_delay_ms=600_000)
    requests = [images(tflite_models, i, 1) for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        futures = []
        for i, request in enumerate(requests):
            futures.append(pool.submit(batcher.predict, request))
            if i < 3:
                wait_until(lambda n=i + 1: batcher.queue_depth() == n)
        answers = [f.result(WAIT_S) for f in futures]
    assert events.batch_sizes() == [4]
    for request, answer in zip(requests, answers, strict=True):
        assert np.array_equal(answer["probabilities"], fp32.predict(request)["probabilities"])


def test_a_lone_request_runs_when_the_delay_ends(
    fp32: Predictor, tflite_models: Models, events: Events
) -> None:
    batcher = DynamicBatcher(fp32, max_batch_size=8, max_queue_delay_ms=5)
    for i in range(3):
        batcher.predict(images(tflite_models, i, 2))
    assert events.batch_sizes() == [2, 2, 2]
    assert batcher.queue_depth() == 0


def test_different_shapes_go_in_separate_batches(tmp_path: Path, events: Events) -> None:
    predictor = onnx_predictor(tmp_path, "rowmax")  # a max is exact in any order (see rowsum below)
    predictor.telemetry.add_sink(events)
    predictor.backend = GatedBackend(predictor.backend)
    batcher = DynamicBatcher(predictor, max_batch_size=8, max_queue_delay_ms=0)
    rng = np.random.default_rng(3)
    shapes = [(1, 3), (2, 5), (1, 3), (1, 5), (2, 3)]
    queued = [{"x": rng.standard_normal(s).astype(np.float32)} for s in shapes]
    _, answers = gated(batcher, {"x": np.ones((1, 7), np.float32)}, queued)
    # Head (1, 3) takes every n=3 request; then the new head (2, 5) takes the n=5 ones.
    assert events.batch_sizes() == [1, 4, 3]
    for request, answer in zip(queued, answers, strict=True):
        assert np.array_equal(answer["y"], predictor.predict(request)["y"])


def test_a_bad_request_in_a_burst_fails_alone(
    gated_fp32: Predictor, tflite_models: Models, events: Events
) -> None:
    batcher = DynamicBatcher(gated_fp32, max_batch_size=8, max_queue_delay_ms=0)
    good = [images(tflite_models, i, 1) for i in range(4)]
    gate = gated_fp32.backend
    assert isinstance(gate, GatedBackend)
    with ThreadPoolExecutor(6) as pool:
        head = pool.submit(batcher.predict, images(tflite_models, 100, 1))
        assert gate.entered.wait(WAIT_S)
        futures = [pool.submit(batcher.predict, r) for r in good[:2]]
        wait_until(lambda: batcher.queue_depth() == 2)
        with pytest.raises(BadRequestError, match=r"shape \(1, 8, 8\) does not match"):
            batcher.predict({"image": np.zeros((1, 8, 8), np.float32)})
        with pytest.raises(BadRequestError, match="NaN"):
            batcher.predict({"image": np.full((1, 8, 8, 1), np.nan, np.float32)})
        futures += [pool.submit(batcher.predict, r) for r in good[2:]]
        wait_until(lambda: batcher.queue_depth() == 4)
        gate.release.set()
        head.result(WAIT_S)
        answers = [f.result(WAIT_S) for f in futures]
    assert events.batch_sizes() == [1, 4]
    assert [e.fields["stage"] for e in events.named(ERROR)] == ["validate", "validate"]
    for request, answer in zip(good, answers, strict=True):
        assert np.array_equal(answer["probabilities"], gated_fp32.predict(request)["probabilities"])


def test_a_failing_merged_call_fails_every_caller_in_it(
    fp32: Predictor, tflite_models: Models, events: Events
) -> None:
    fp32.backend = GatedBackend(fp32.backend, fail_when=lambda rows: rows > 1)
    batcher = DynamicBatcher(fp32, max_batch_size=8, max_queue_delay_ms=0)
    queued = [images(tflite_models, i, 1) for i in range(3)]
    first, answers = gated(batcher, images(tflite_models, 100, 1), queued)
    assert first["probabilities"].shape == (1, 10)
    assert all(isinstance(a, InferenceError) for a in answers)
    assert all("injected failure at batch 3" in str(a) for a in answers)
    assert [e.fields["stage"] for e in events.named(ERROR)] == ["predict"]  # one call failed
    # And the batcher still serves afterwards.
    assert batcher.predict(images(tflite_models, 0, 1))["probabilities"].shape == (1, 10)


def test_unsplittable_outputs_fail_the_batch(tmp_path: Path) -> None:
    predictor = onnx_predictor(tmp_path, "rowmax")
    real = predictor.backend

    class SumsEverything(GatedBackend):
        def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            out = super().run(feeds)
            return {"y": out["y"].sum(axis=0, keepdims=True)}  # one row, whatever the batch

    predictor.backend = SumsEverything(real)
    batcher = DynamicBatcher(predictor, max_batch_size=8, max_queue_delay_ms=0)
    queued = [{"x": np.ones((1, 2), np.float32)} for _ in range(2)]
    _, answers = gated(batcher, {"x": np.ones((1, 2), np.float32)}, queued)
    assert all(isinstance(a, InferenceError) and "cannot be split" in str(a) for a in answers)


# -- surface and construction -------------------------------------------------------------


def test_offers_what_a_predictor_offers(fp32: Predictor, tflite_models: Models) -> None:
    batcher = DynamicBatcher(fp32, max_batch_size=4, max_queue_delay_ms=1)
    assert batcher.signature is fp32.signature
    assert batcher.backend is fp32.backend
    assert batcher.telemetry is fp32.telemetry
    assert batcher.manifest is fp32.manifest
    body = {"inputs": [{"name": "image", "shape": [2, 8, 8, 1], "datatype": "FP32",
                        "data": tflite_models.images[:2].reshape(-1).tolist()}]}  # fmt: skip
    plain = DataPlane(fp32, model_name="digits", model_version="1")
    batched = DataPlane(batcher, model_name="digits", model_version="1")  # type: ignore[arg-type]
    assert batched.infer(body) == plain.infer(body)
    assert batched.metadata() == plain.metadata()


def test_a_model_without_a_batch_axis_is_refused(tmp_path: Path) -> None:
    predictor = onnx_predictor(tmp_path, "fixed")
    with pytest.raises(ModelLoadError, match=r"dynamic batch axis.*input 'x' \(1, 4\)"):
        DynamicBatcher(predictor, max_batch_size=4, max_queue_delay_ms=1)


def test_a_fixed_batch_output_is_refused(fp32: Predictor) -> None:
    fp32.signature = IOSignature(
        inputs=fp32.signature.inputs, outputs=(TensorSpec("probabilities", "float32", (1, 10)),)
    )
    with pytest.raises(ModelLoadError, match=r"output 'probabilities' \(1, 10\)"):
        DynamicBatcher(fp32, max_batch_size=4, max_queue_delay_ms=1)


# -- settings -----------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [None, {}, {"threads": 1}, {"batching": None}, {"batching": False}])
def test_no_batching_returns_the_predictor(fp32: Predictor, settings: Any) -> None:
    assert batcher_from_settings(fp32, settings) is fp32


def test_max_batch_size_one_is_no_batching(fp32: Predictor) -> None:
    assert batcher_from_settings(fp32, {"batching": {"max_batch_size": 1, "max_queue_delay_ms": 2}}) is fp32


def test_batching_from_the_manifest(tmp_path: Path, tflite_models: Models) -> None:
    # The backend never sees the "batching" key (LiteRT refuses unknown settings).
    settings = {"threads": 1, "batching": {"max_batch_size": 8, "max_queue_delay_ms": 2.5}}
    root = write_artifact(tmp_path / "a", tflite_models.fp32, precision="fp32", settings=settings)
    predictor = Predictor.from_artifact(root)
    assert predictor.manifest is not None
    batcher = batcher_from_settings(predictor, predictor.manifest.runtime.settings)
    assert isinstance(batcher, DynamicBatcher)
    assert (batcher.max_batch_size, batcher.max_queue_delay_ms) == (8, 2.5)
    assert batcher.predictor is predictor


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([8, 2], "must be an object"),
        ({"max_batch_size": 8}, "lacks max_queue_delay_ms"),
        ({"max_batch_size": 8, "max_queue_delay_ms": 1, "max_delay": 2}, "unknown .* field.*max_delay"),
        ({"max_batch_size": "8", "max_queue_delay_ms": 1}, r"batching.max_batch_size.*got '8'"),
        ({"max_batch_size": 8.0, "max_queue_delay_ms": 1}, r"batching.max_batch_size.*got 8.0"),
        ({"max_batch_size": True, "max_queue_delay_ms": 1}, r"batching.max_batch_size.*got True"),
        ({"max_batch_size": 0, "max_queue_delay_ms": 1}, r"batching.max_batch_size.*got 0"),
        ({"max_batch_size": -4, "max_queue_delay_ms": 1}, r"batching.max_batch_size.*got -4"),
        ({"max_batch_size": MAX_BATCH_SIZE_LIMIT + 1, "max_queue_delay_ms": 1}, "from 1 to 4096"),
        ({"max_batch_size": 8, "max_queue_delay_ms": -1}, r"batching.max_queue_delay_ms.*got -1"),
        ({"max_batch_size": 8, "max_queue_delay_ms": "2"}, r"batching.max_queue_delay_ms.*got '2'"),
        ({"max_batch_size": 8, "max_queue_delay_ms": float("nan")}, r"max_queue_delay_ms.*got nan"),
        ({"max_batch_size": 8, "max_queue_delay_ms": float("inf")}, r"max_queue_delay_ms.*got inf"),
        ({"max_batch_size": 8, "max_queue_delay_ms": 5000}, r"max_queue_delay_ms.*from 0 to 1000"),
        ({"max_batch_size": 8, "max_queue_delay_ms": False}, r"max_queue_delay_ms.*got False"),
    ],
)
def test_bad_batching_settings_name_the_field(fp32: Predictor, config: Any, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        batcher_from_settings(fp32, {"batching": config})


def test_parse_batching_accepts_ints_and_floats() -> None:
    assert parse_batching({"max_batch_size": 32, "max_queue_delay_ms": 0}) == BatchingSettings(32, 0.0, 1)
    assert parse_batching(
        {"max_batch_size": 2, "max_queue_delay_ms": 0.5, "max_concurrent_batches": 4}
    ) == BatchingSettings(2, 0.5, 4)


@pytest.mark.parametrize("value", [0, -1, 65, 2.0, "2", True, None])
def test_bad_max_concurrent_batches_is_named(fp32: Predictor, value: Any) -> None:
    config = {"max_batch_size": 8, "max_queue_delay_ms": 1, "max_concurrent_batches": value}
    with pytest.raises(ModelLoadError, match=r"batching.max_concurrent_batches.*from 1 to 64"):
        batcher_from_settings(fp32, {"batching": config})


def test_max_concurrent_batches_from_settings(fp32: Predictor) -> None:
    config = {"max_batch_size": 8, "max_queue_delay_ms": 1, "max_concurrent_batches": 2}
    batcher = batcher_from_settings(fp32, {"batching": config})
    assert isinstance(batcher, DynamicBatcher) and batcher.max_concurrent_batches == 2


def test_constructor_checks_its_arguments(fp32: Predictor) -> None:
    with pytest.raises(ModelLoadError, match="max_batch_size"):
        DynamicBatcher(fp32, max_batch_size=0, max_queue_delay_ms=1)
    with pytest.raises(ModelLoadError, match="max_queue_delay_ms"):
        DynamicBatcher(fp32, max_batch_size=2, max_queue_delay_ms=-0.5)
    with pytest.raises(ModelLoadError, match="max_concurrent_batches"):
        DynamicBatcher(fp32, max_batch_size=2, max_queue_delay_ms=1, max_concurrent_batches=0)
