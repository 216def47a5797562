"""Telemetry: events reach every sink in order; a failing sink is counted, never raised."""

from __future__ import annotations

import time

import pytest

from edgepack.runtime.telemetry import Telemetry, TelemetryEvent


def test_emit_reaches_sinks_in_order_with_fields_and_time() -> None:
    seen: list[tuple[str, TelemetryEvent]] = []
    telemetry = Telemetry([lambda e: seen.append(("first", e))])
    telemetry.add_sink(lambda e: seen.append(("second", e)))
    before = time.time()
    event = telemetry.emit("inference", latency_ms=1.5, batch_size=2, name="shadowing is fine")
    assert [who for who, _ in seen] == ["first", "second"]
    assert seen[0][1] is event
    assert event.name == "inference"
    assert dict(event.fields) == {"latency_ms": 1.5, "batch_size": 2, "name": "shadowing is fine"}
    assert before <= event.timestamp <= time.time()
    assert event.to_dict()["event"] == "inference"


def test_fields_are_read_only() -> None:
    event = Telemetry().emit("x", a=1)
    with pytest.raises(TypeError):
        event.fields["a"] = 2  # type: ignore[index]


def test_failing_sinks_are_counted_and_the_rest_still_run() -> None:
    seen: list[str] = []

    def broken(event: TelemetryEvent) -> None:
        raise ValueError("disk full")

    telemetry = Telemetry([broken, lambda e: seen.append(e.name), broken])
    telemetry.emit("one")
    telemetry.emit("two")
    assert seen == ["one", "two"]
    assert telemetry.dropped == 4


def test_a_sink_must_be_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        Telemetry().add_sink("not a function")  # type: ignore[arg-type]
