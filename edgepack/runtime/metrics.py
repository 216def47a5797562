"""Prometheus metrics for the HTTP server, written by hand in the text format 0.0.4.

The runtime ships without ``prometheus_client``: a counter, a gauge and a histogram are
a few lines each. Every metric has HELP and TYPE lines, counters end in ``_total`` and
nothing else does, durations are in seconds (``promtool check metrics`` passes).

Two feeds: the server counts what it answers (requests, errors, in-flight, connections),
and each model's ``Telemetry`` gets a sink (``ServerMetrics.sink``) that turns the
runtime's events into inference latency, batch size and load time.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

from .telemetry import INFERENCE, MODEL_LOADED, Telemetry, TelemetryEvent

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds; finer than Prometheus' defaults at the low end, where small edge models answer.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labels = tuple(labels)
        self._lock = threading.Lock()

    def _label_text(self, values: Labels, extra: str = "") -> str:
        pairs = [f'{k}="{_escape(v)}"' for k, v in zip(self.labels, values, strict=True)]
        if extra:
            pairs.append(extra)
        return "{" + ",".join(pairs) + "}" if pairs else ""

    def samples(self) -> list[str]:
        raise NotImplementedError

    def render(self) -> str:
        head = f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.kind}\n"
        return head + "".join(line + "\n" for line in self.samples())


class _Values(_Metric):
    """One number per label set; ``read`` adds values computed at scrape time."""

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        read: Callable[[], Mapping[Labels, float]] | None = None,
    ) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[Labels, float] = {}
        self._read = read

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0)

    def samples(self) -> list[str]:
        with self._lock:
            values = dict(self._values)
        if self._read is not None:
            values.update(self._read())
        return [f"{self.name}{self._label_text(k)} {_number(v)}" for k, v in sorted(values.items())]


class Counter(_Values):
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        read: Callable[[], Mapping[Labels, float]] | None = None,
    ) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"counter {name!r} must end in _total")
        super().__init__(name, help_text, labels, read)

    def inc(self, *labels: str, amount: float = 1) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0) + amount


class Gauge(_Values):
    """A value that goes up and down, or is read from a callback at scrape time."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        read: Callable[[], Mapping[Labels, float]] | None = None,
    ) -> None:
        if name.endswith("_total"):
            raise ValueError(f"gauge {name!r} must not end in _total")
        super().__init__(name, help_text, labels, read)

    def set(self, value: float, *labels: str) -> None:
        with self._lock:
            self._values[labels] = value

    def add(self, amount: float, *labels: str) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0) + amount


class Histogram(_Metric):
    """Cumulative buckets, sum and count per label set."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        buckets: Iterable[float] = LATENCY_BUCKETS,
    ) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[Labels, list[float]] = {}  # per-bucket counts (non-cumulative), +Inf, sum

    def observe(self, value: float, *labels: str) -> None:
        index = bisect.bisect_left(self.buckets, value)  # le is inclusive: value == bound goes in
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = [0.0] * (len(self.buckets) + 2)
            series[index] += 1
            series[-1] += value

    def count(self, *labels: str) -> int:
        series = self._series.get(labels)
        return int(sum(series[:-1])) if series else 0

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        lines = []
        for labels, series in items:
            cumulative = 0.0
            for bound, n in zip((*self.buckets, math.inf), series[:-1], strict=True):
                cumulative += n
                le = 'le="' + _number(bound) + '"'
                lines.append(f"{self.name}_bucket{self._label_text(labels, le)} {_number(cumulative)}")
            lines.append(f"{self.name}_sum{self._label_text(labels)} {_number(series[-1])}")
            lines.append(f"{self.name}_count{self._label_text(labels)} {_number(cumulative)}")
        return lines


class ServerMetrics:
    """Every metric the HTTP server exposes, and the telemetry sink that feeds some of them."""

    def __init__(self) -> None:
        self._telemetry: dict[str, Telemetry] = {}
        self.requests = Counter(
            "edgepack_requests_total",
            "Inference requests answered, by model, body encoding (json|binary) and HTTP status.",
            ("model", "encoding", "status"),
        )
        self.errors = Counter(
            "edgepack_errors_total",
            "Error answers by model (empty when none applies) and reason (the error code).",
            ("model", "reason"),
        )
        self.request_seconds = Histogram(
            "edgepack_request_duration_seconds",
            "Inference request time in the server, from the parsed head to the answer sent.",
            ("model",),
        )
        self.inference_seconds = Histogram(
            "edgepack_inference_duration_seconds",
            "Model run time per batch, from the runtime's inference events (validation included).",
            ("model", "backend"),
        )
        self.batch_size = Histogram(
            "edgepack_inference_batch_size",
            "Batch size per model run, from the runtime's inference events.",
            ("model",),
            buckets=BATCH_BUCKETS,
        )
        self.in_flight = Gauge("edgepack_in_flight_requests", "Inference requests being processed now.")
        self.connections = Gauge("edgepack_open_connections", "Client connections open now.")
        self.load_seconds = Gauge(
            "edgepack_model_load_seconds", "Time it took to load each model at startup.", ("model",)
        )
        self.model_info = Gauge(
            "edgepack_model_info",
            "Models served (always 1); labels identify the artifact that was loaded.",
            ("model", "version", "backend", "precision", "target", "model_sha256", "artifact_sha256"),
        )
        self.telemetry_dropped = Counter(
            "edgepack_telemetry_sink_errors_total",
            "Telemetry sink calls that raised (e.g. a user's on_event hook), by model.",
            ("model",),
            read=lambda: {(name,): t.dropped for name, t in self._telemetry.items()},
        )
        self._all: tuple[_Metric, ...] = (
            self.requests,
            self.errors,
            self.request_seconds,
            self.inference_seconds,
            self.batch_size,
            self.in_flight,
            self.connections,
            self.load_seconds,
            self.model_info,
            self.telemetry_dropped,
        )

    def sink(self, model: str, telemetry: Telemetry | None = None) -> Callable[[TelemetryEvent], None]:
        """A telemetry sink for ``model``'s events; ``telemetry``'s failed sink calls are counted."""
        if telemetry is not None:
            self._telemetry[model] = telemetry

        def record(event: TelemetryEvent) -> None:
            fields = event.fields
            if event.name == INFERENCE:
                self.inference_seconds.observe(
                    float(fields.get("latency_ms", 0.0)) / 1e3, model, str(fields.get("backend", ""))
                )
                self.batch_size.observe(float(fields.get("batch_size", 1)), model)
            elif event.name == MODEL_LOADED:
                self.load_seconds.set(float(fields.get("load_ms", 0.0)) / 1e3, model)

        return record

    def render(self) -> str:
        """The exposition text, one block per metric."""
        return "".join(metric.render() for metric in self._all)
