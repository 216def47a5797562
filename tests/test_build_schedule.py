"""The build's scheduler with real threads: results in target order, cached targets never
converted, packaging of one target overlapping the conversion of the next, failures kept to
their target."""

from __future__ import annotations

import dataclasses
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from edgepack.build_schedule import StageClock, TargetStages, run_targets
from edgepack.errors import EdgepackError, PassError


def _profiles(*names: str) -> list[Any]:
    return [SimpleNamespace(name=n) for n in names]


class Recorder:
    def __init__(self, cached: set[str] = frozenset(), broken: set[str] = frozenset()) -> None:
        self.cached, self.broken = cached, broken
        self.events: list[str] = []
        self.lock = threading.Lock()
        self.second_conversion_started = threading.Event()
        self.overlapped = False

    def note(self, event: str) -> None:
        with self.lock:
            self.events.append(event)

    def stages(self) -> TargetStages[str, str]:
        return TargetStages(
            reuse=lambda p: (lambda: f"{p.name}:cached") if p.name in self.cached else None,
            prepare=lambda: self.note("prepare"),
            prefetch=self.prefetch,
            convert=self.convert,
            package=self.package,
            failed=lambda p, e: f"{p.name}:failed:{e.message}",
        )

    def prefetch(self, p: Any) -> None:
        raise RuntimeError("a prefetch failure is the later stage's to report")

    def convert(self, p: Any) -> str:
        self.note(f"convert {p.name}")
        if p.name == "b":
            self.second_conversion_started.set()
        if p.name in self.broken:
            raise PassError(f"{p.name} cannot convert")
        return f"{p.name}-model"

    def package(self, p: Any, converted: str) -> str:
        if p.name == "a":  # still packaging a while b converts?
            self.overlapped = self.second_conversion_started.wait(timeout=30)
        self.note(f"package {p.name}")
        return f"{p.name}:{converted}"


def test_results_come_back_in_target_order_and_packaging_overlaps_the_next_conversion() -> None:
    rec = Recorder()
    results = run_targets(_profiles("a", "b", "c"), rec.stages(), workers=1)
    assert results == ["a:a-model", "b:b-model", "c:c-model"]
    assert rec.overlapped
    assert rec.events[0] == "prepare"


def test_cached_targets_are_placed_without_converting_or_preparing() -> None:
    rec = Recorder(cached={"a", "b"})
    assert run_targets(_profiles("a", "b"), rec.stages(), workers=2) == ["a:cached", "b:cached"]
    assert rec.events == []  # nothing loaded, nothing converted


def test_a_failed_conversion_is_that_target_alone() -> None:
    rec = Recorder(broken={"b"}, cached={"c"})
    results = run_targets(_profiles("a", "b", "c"), rec.stages(), workers=1)
    assert results == ["a:a-model", "b:failed:b cannot convert", "c:cached"]


def test_a_failed_packaging_is_that_target_alone() -> None:
    rec = Recorder()
    stages = rec.stages()

    def package(p: Any, converted: str) -> str:
        if p.name == "a":
            raise PassError("a cannot package")
        return converted

    stages = dataclasses.replace(stages, package=package)
    rec.second_conversion_started.set()
    assert run_targets(_profiles("a", "b"), stages, workers=1) == ["a:failed:a cannot package", "b-model"]


def test_a_failure_to_prepare_fails_the_build_before_any_target() -> None:
    rec = Recorder()
    stages = rec.stages()

    def prepare() -> None:
        raise EdgepackError("the model does not load")

    stages = dataclasses.replace(stages, prepare=prepare)
    with pytest.raises(EdgepackError, match="does not load"):
        run_targets(_profiles("a"), stages, workers=1)
    assert rec.events == []


def test_stage_clock_adds_up_each_stage_and_says_it() -> None:
    said: list[str] = []
    clock = StageClock("t", said.append)
    for _ in range(2):
        with clock.stage("archive"):
            pass
    with pytest.raises(ValueError), clock.stage("verify"):
        raise ValueError("a failed stage is still timed")
    assert set(clock.seconds) == {"archive", "verify"}
    assert said[0].startswith("[t] archive: ") and len(said) == 3
