"""Telemetry events: the runtime emits, transports subscribe.

The runtime knows nothing about CloudWatch, Prometheus or device spools; each adapter
adds a *sink* (any callable taking a ``TelemetryEvent``). A sink that raises never
breaks inference: the exception is swallowed and counted in ``Telemetry.dropped``.

Events emitted by the runtime:

``model_loaded``  ``load_ms``, ``backend``, ``model``, ``version``, ``file``, ``runtime``
``inference``     ``latency_ms``, ``run_ms``, ``batch_size``, ``backend``
``request``       ``protocol``, ``batch_size`` and one ``<stage>_ms`` per data-plane stage
``error``         ``stage``, ``code``, ``status``, ``message``
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

MODEL_LOADED = "model_loaded"
INFERENCE = "inference"
REQUEST = "request"
ERROR = "error"


@dataclass(frozen=True)
class TelemetryEvent:
    """One event: a name, read-only fields and the wall-clock time it was emitted."""

    name: str
    fields: Mapping[str, Any]
    timestamp: float  # seconds since the epoch

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.name, "timestamp": self.timestamp, **self.fields}


Sink = Callable[[TelemetryEvent], object]


class Telemetry:
    """Fan-out of events to sinks, in the order they were added."""

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        # A tuple swapped under the lock: emit() iterates without locking.
        self._sinks: tuple[Sink, ...] = tuple(sinks)
        self._lock = threading.Lock()
        self.dropped = 0  # sink calls that raised

    @property
    def sinks(self) -> tuple[Sink, ...]:
        return self._sinks

    def add_sink(self, sink: Sink) -> None:
        """Send every later event to ``sink`` as well."""
        if not callable(sink):
            raise TypeError(f"telemetry sink must be callable, got {type(sink).__name__}")
        with self._lock:
            self._sinks = (*self._sinks, sink)

    def emit(self, name: str, /, **fields: Any) -> TelemetryEvent:
        """Build the event and hand it to every sink; never raises because of a sink."""
        event = TelemetryEvent(name=name, fields=MappingProxyType(fields), timestamp=time.time())
        for sink in self._sinks:
            try:
                sink(event)
            except Exception:
                with self._lock:
                    self.dropped += 1
        return event
