"""Dynamic batching: concurrent requests merged into one model call, answers split back.

The HTTP server answers each connection on its own thread. With batching on, each
thread's ``predict`` is queued; requests whose inputs agree on everything but the batch
axis (dtype and the other axes) are concatenated along axis 0, up to ``max_batch_size``
rows, run as one ``Predictor.predict`` call and split back to their callers, each
getting exactly the rows it sent.

How a batch forms (as Triton's dynamic batcher, ``max_concurrent_batches`` playing its
model instance count, default 1):

- A request is validated on its own first (``Predictor.validate``), so a bad request is
  refused alone and never fails the batch it would have joined.
- The caller at the head of the queue leads: it waits until fewer than
  ``max_concurrent_batches`` model calls run and either its batch is full or
  ``max_queue_delay_ms`` has passed since the head request arrived; takes the queued
  requests that match the head's shapes (first come, first taken, up to
  ``max_batch_size`` rows); passes the lead to the new head of the queue; runs the
  batch and hands every caller its rows (or the exception the call raised). Requests
  that queued while the model was busy are past their delay and go as soon as it frees.
- A request of ``max_batch_size`` rows or more is a full batch by itself: it runs alone.
- Requests with other shapes stay queued, in order, for a later batch.

There is no worker thread: the callers' own threads run the batches, so a lone request
costs its validation and a lock, not a thread hand-off. The Predictor emits its usual
``inference`` event per model call, ``batch_size`` being the merged rows.

Configured by the manifest's ``runtime.settings.batching``::

    {"max_batch_size": 8, "max_queue_delay_ms": 2, "max_concurrent_batches": 1}

(the last optional) read by ``batcher_from_settings``. With one intra-op thread per model
call, ``max_concurrent_batches`` up to the CPU count keeps every core busy.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InferenceError, ModelLoadError
from .manifest import Manifest
from .predictor import Predictor, format_shape
from .signature import IOSignature
from .telemetry import ERROR, Telemetry

SETTING = "batching"  # the key in the manifest's runtime.settings
MAX_BATCH_SIZE_LIMIT = 4096  # rows; larger is a typo, not a plan
MAX_QUEUE_DELAY_MS_LIMIT = 1000.0  # a request held a second for company is a misconfiguration
_FIELDS = ("max_batch_size", "max_queue_delay_ms", "max_concurrent_batches")
_REQUIRED = ("max_batch_size", "max_queue_delay_ms")
MAX_CONCURRENT_BATCHES_LIMIT = 64

# (input name, dtype, shape without the batch axis) per input: requests merge only when equal.
_Key = tuple[tuple[str, str, tuple[int, ...]], ...]


@dataclass(eq=False)
class _Request:
    key: _Key
    arrays: dict[str, np.ndarray]
    rows: int
    arrival: float  # time.monotonic()
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # set with ``done`` when this caller is handed the lead instead of a result
    result: dict[str, np.ndarray] | None = None
    error: BaseException | None = None


class DynamicBatcher:
    """A ``Predictor`` that merges concurrent requests into batched model calls.

    Offers what the data plane and the adapters read from a Predictor: ``predict``,
    ``validate``, ``signature``, ``backend``, ``telemetry`` and ``manifest``. Thread-safe.
    """

    def __init__(
        self,
        predictor: Predictor,
        *,
        max_batch_size: int,
        max_queue_delay_ms: float,
        max_concurrent_batches: int = 1,
    ) -> None:
        for name, value in (
            ("max_batch_size", max_batch_size),
            ("max_concurrent_batches", max_concurrent_batches),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelLoadError(f"{name} must be an integer >= 1, got {value!r}")
        if (
            isinstance(max_queue_delay_ms, bool)
            or not isinstance(max_queue_delay_ms, int | float)
            or not math.isfinite(max_queue_delay_ms)
            or max_queue_delay_ms < 0
        ):
            raise ModelLoadError(f"max_queue_delay_ms must be a number >= 0, got {max_queue_delay_ms!r}")
        _check_batch_axis(predictor.signature)
        self.predictor = predictor
        self.max_batch_size = max_batch_size
        self.max_queue_delay_ms = float(max_queue_delay_ms)
        self.max_concurrent_batches = max_concurrent_batches
        self._delay_s = self.max_queue_delay_ms / 1e3
        self._lock = threading.Lock()
        # The leader waits here for its batch to fill, or for a model call to finish.
        self._wake = threading.Condition(self._lock)
        self._queue: list[_Request] = []
        self._queued_rows: dict[_Key, int] = {}
        self._busy = False  # a caller holds the lead; False only when the queue is empty
        self._collecting: _Key | None = None  # the key the leader is waiting to fill
        self._running = 0  # model calls in progress
        self.batches = 0  # model calls made
        self.requests = 0  # requests answered by them (successfully or not)

    # -- what a Predictor offers ------------------------------------------------------

    @property
    def signature(self) -> IOSignature:
        return self.predictor.signature

    @property
    def backend(self) -> Any:
        return self.predictor.backend

    @property
    def telemetry(self) -> Telemetry:
        return self.predictor.telemetry

    @property
    def manifest(self) -> Manifest | None:
        return self.predictor.manifest

    def validate(self, inputs: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], int]:
        """As ``Predictor.validate``."""
        return self.predictor.validate(inputs)

    def predict(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Answer one request, possibly inside a batch with others; same result as the Predictor's."""
        try:
            arrays, rows = self.predictor.validate(inputs)
        except InferenceError as e:
            # Reported as the Predictor reports its own refusals.
            self.telemetry.emit(ERROR, stage="validate", code=e.code, status=e.status, message=e.message)
            raise
        key = tuple((name, arr.dtype.str, arr.shape[1:]) for name, arr in sorted(arrays.items()))
        request = _Request(key=key, arrays=arrays, rows=rows, arrival=time.monotonic())
        with self._lock:
            self._queue.append(request)
            self._queued_rows[key] = self._queued_rows.get(key, 0) + rows
            leads = not self._busy
            if leads:
                self._busy = True
            elif key == self._collecting and self._queued_rows[key] >= self.max_batch_size:
                self._wake.notify()
        if not leads:
            try:
                request.done.wait()
            except BaseException:  # interrupted while queued: withdraw, and hand on a lead given
                with self._lock:
                    if request.lead:
                        self._lead_passed(request)
                    else:
                        self._withdraw(request)
                raise
            if not request.lead:
                return _outcome(request)
        self._lead(request)
        return _outcome(request)

    def queue_depth(self) -> int:
        """Requests waiting for a model call (not counting those in the call now running)."""
        with self._lock:
            return len(self._queue)

    def stats(self) -> dict[str, float]:
        """Model calls made, requests they answered, and requests per call."""
        with self._lock:
            batches, requests = self.batches, self.requests
        return {
            "batches": batches,
            "requests": requests,
            "mean_requests": requests / batches if batches else 0.0,
        }

    # -- the leader -------------------------------------------------------------------

    def _lead(self, request: _Request) -> None:
        """Collect the batch headed by ``request``, pass the lead on, run the batch, deliver."""
        batch: list[_Request] = []
        try:
            with self._lock:
                assert self._queue[0] is request, "the leader heads the queue"
                key = request.key
                deadline = request.arrival + self._delay_s
                self._collecting = key
                while True:
                    if self._running >= self.max_concurrent_batches:
                        self._wake.wait()  # requests keep queueing meanwhile
                        continue
                    remaining = deadline - time.monotonic()
                    if self._queued_rows[key] >= self.max_batch_size or remaining <= 0:
                        break
                    self._wake.wait(remaining)
                self._collecting = None
                batch = self._take(key)
                self._running += 1
                self.batches += 1
                self.requests += len(batch)
                # The next batch gathers (and may start, up to max_concurrent_batches) while this runs.
                self._lead_passed(request)
        except BaseException as e:  # KeyboardInterrupt included: nobody may wait forever
            with self._lock:
                self._collecting = None
                self._lead_passed(request)
            for r in batch or [request]:
                r.error = e
                r.done.set()
            raise
        try:
            self._run(batch)
        finally:
            with self._lock:
                self._running -= 1
                self._wake.notify()

    def _lead_passed(self, leader: _Request) -> None:
        """(Lock held.) ``leader`` is done leading: the new head of the queue leads, if any."""
        self._withdraw(leader)  # still queued only when it failed before taking its batch
        if self._queue:
            head = self._queue[0]
            head.lead = True
            head.done.set()
        else:
            self._busy = False

    def _withdraw(self, request: _Request) -> None:
        """(Lock held.) Take ``request`` out of the queue if it is still there."""
        if request in self._queue:
            self._queue.remove(request)
            self._queued_rows[request.key] -= request.rows
            if not self._queued_rows[request.key]:
                del self._queued_rows[request.key]

    def _take(self, key: _Key) -> list[_Request]:
        """Remove and return the queued requests of ``key`` that fit, first come first taken."""
        batch: list[_Request] = []
        rows = 0
        for r in self._queue:
            if r.key != key:
                continue
            if batch and rows + r.rows > self.max_batch_size:
                break  # keep arrival order within a shape: no later, smaller request jumps it
            batch.append(r)
            rows += r.rows
            if rows >= self.max_batch_size:
                break
        taken = set(map(id, batch))
        self._queue = [r for r in self._queue if id(r) not in taken]
        self._queued_rows[key] -= rows
        if not self._queued_rows[key]:
            del self._queued_rows[key]
        return batch

    def _run(self, batch: list[_Request]) -> None:
        """One model call for ``batch``; every request gets its rows or the call's exception."""
        try:
            if len(batch) == 1:
                batch[0].result = self.predictor.predict(batch[0].arrays)
            else:
                merged = {
                    name: np.concatenate([r.arrays[name] for r in batch], axis=0) for name in batch[0].arrays
                }
                _split(self.predictor.predict(merged), batch)
        except BaseException as e:
            for r in batch:
                r.error = e
            if not isinstance(e, Exception):
                raise  # after the callers below are released
        finally:
            for r in batch:
                r.done.set()


def _split(outputs: Mapping[str, np.ndarray], batch: list[_Request]) -> None:
    total = sum(r.rows for r in batch)
    for name, arr in outputs.items():
        if arr.ndim == 0 or arr.shape[0] != total:
            raise InferenceError(
                f"output {name!r} has shape {format_shape(arr.shape)} for a merged batch of {total} rows: "
                "its first axis is not the batch, so the batch cannot be split back"
            )
    start = 0
    for r in batch:
        r.result = {name: arr[start : start + r.rows] for name, arr in outputs.items()}
        start += r.rows


def _outcome(request: _Request) -> dict[str, np.ndarray]:
    if request.error is not None:
        raise request.error
    assert request.result is not None
    return request.result


def _check_batch_axis(signature: IOSignature) -> None:
    """Every input and output must have a dynamic first axis: that is what batches merge on."""
    fixed = [
        f"{kind} {t.name!r} {format_shape(t.shape)}"
        for kind, tensors in (("input", signature.inputs), ("output", signature.outputs))
        for t in tensors
        if not t.shape or t.shape[0] is not None
    ]
    if fixed:
        raise ModelLoadError(
            "dynamic batching needs a dynamic batch axis (None) first on every input and output; "
            f"this model has {', '.join(fixed)}: turn batching off for it"
        )


# -- configuration ---------------------------------------------------------------------


def batcher_from_settings(
    predictor: Predictor, settings: Mapping[str, Any] | None
) -> Predictor | DynamicBatcher:
    """``predictor`` behind a ``DynamicBatcher`` as the runtime settings' ``batching`` says.

    ``settings`` is the manifest's ``runtime.settings`` (the whole mapping). Without a
    ``batching`` entry (or with ``null``/``false``), or with ``max_batch_size`` 1, the
    predictor is returned unchanged. A bad value is a ``ModelLoadError`` naming the field.
    """
    config = (settings or {}).get(SETTING)
    if config is None or config is False:
        return predictor
    parsed = parse_batching(config)
    if parsed.max_batch_size == 1:
        return predictor
    return DynamicBatcher(
        predictor,
        max_batch_size=parsed.max_batch_size,
        max_queue_delay_ms=parsed.max_queue_delay_ms,
        max_concurrent_batches=parsed.max_concurrent_batches,
    )


@dataclass(frozen=True)
class BatchingSettings:
    """``runtime.settings.batching``, checked."""

    max_batch_size: int
    max_queue_delay_ms: float
    max_concurrent_batches: int = 1


def parse_batching(config: Any) -> BatchingSettings:
    """``runtime.settings.batching`` checked; ``ModelLoadError`` naming the field otherwise."""
    where = f"runtime setting {SETTING!r}"
    if not isinstance(config, Mapping):
        raise ModelLoadError(
            f"{where} must be an object {{max_batch_size, max_queue_delay_ms[, max_concurrent_batches]}}, "
            f"got {type(config).__name__}"
        )
    unknown = sorted(str(k) for k in config if k not in _FIELDS)
    if unknown:
        raise ModelLoadError(f"unknown {where} field(s) {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise ModelLoadError(f"{where} lacks {', '.join(missing)}")
    size = config["max_batch_size"]
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_BATCH_SIZE_LIMIT:
        raise ModelLoadError(
            f"runtime setting '{SETTING}.max_batch_size' must be an integer from 1 to "
            f"{MAX_BATCH_SIZE_LIMIT}, got {size!r}"
        )
    delay = config["max_queue_delay_ms"]
    if (
        isinstance(delay, bool)
        or not isinstance(delay, int | float)
        or not math.isfinite(delay)
        or not 0 <= delay <= MAX_QUEUE_DELAY_MS_LIMIT
    ):
        raise ModelLoadError(
            f"runtime setting '{SETTING}.max_queue_delay_ms' must be a number of milliseconds from 0 to "
            f"{MAX_QUEUE_DELAY_MS_LIMIT:g}, got {delay!r}"
        )
    concurrent = config.get("max_concurrent_batches", 1)
    if (
        isinstance(concurrent, bool)
        or not isinstance(concurrent, int)
        or not 1 <= concurrent <= MAX_CONCURRENT_BATCHES_LIMIT
    ):
        raise ModelLoadError(
            f"runtime setting '{SETTING}.max_concurrent_batches' must be an integer from 1 to "
            f"{MAX_CONCURRENT_BATCHES_LIMIT}, got {concurrent!r}"
        )
    return BatchingSettings(size, float(delay), concurrent)


__all__ = [
    "MAX_BATCH_SIZE_LIMIT",
    "MAX_CONCURRENT_BATCHES_LIMIT",
    "MAX_QUEUE_DELAY_MS_LIMIT",
    "BatchingSettings",
    "DynamicBatcher",
    "batcher_from_settings",
    "parse_batching",
]
