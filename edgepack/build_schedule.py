"""How one build's targets share the machine: conversions run one after another on the
calling thread (converters are not thread-safe, and each already uses the cores it wants),
while one thread installs runtime packages ahead of need (from the start, during the
framework import and model load) and a pool of one thread per core stages, packages and
verifies each converted target as the next one converts. Results come back in target order.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import EdgepackError
from .targets import TargetProfile

R = TypeVar("R")  # a target's result
C = TypeVar("C")  # a converted target, ready to package


def pool_size() -> int:
    """Background threads beside the converting one: one per core. Conversions are short
    next to packaging (an emulated init check, compression), so once they are done the
    pool has the cores to itself."""
    return max(1, os.cpu_count() or 1)


@dataclass
class StageClock:
    """Wall seconds per stage of one target, announced as each stage ends."""

    target: str
    say: Callable[[str], None]
    seconds: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - started
            with self._lock:
                self.seconds[name] = round(self.seconds.get(name, 0.0) + spent, 3)
            self.say(f"[{self.target}] {name}: {spent:.1f}s")


@dataclass(frozen=True)
class TargetStages(Generic[C, R]):
    """What the scheduler does to each target; every callable raises EdgepackError for a
    failure of that target alone."""

    reuse: Callable[[TargetProfile], Callable[[], R] | None]  # a cached target's placement, or None
    prepare: Callable[[], None]  # load what converting needs; raises for the whole build
    prefetch: Callable[[TargetProfile], None]  # warm caches a later stage reads; failures ignored
    convert: Callable[[TargetProfile], C]
    package: Callable[[TargetProfile, C], R]
    failed: Callable[[TargetProfile, EdgepackError], R]


def run_targets(profiles: list[TargetProfile], stages: TargetStages[C, R], workers: int) -> list[R]:
    reuse = {p.name: stages.reuse(p) for p in profiles}
    to_build = [p for p in profiles if reuse[p.name] is None]
    futures: dict[str, Future[R]] = {}
    finished: dict[str, R] = {}
    with (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgepack-build") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgepack-prefetch") as prefetching,
    ):
        # Package installs need no model: they overlap the framework import and model load,
        # on a thread of their own so that no packaging waits behind another target's install.
        for p in to_build:
            prefetching.submit(_quietly, stages.prefetch, p)
        if to_build:
            try:
                stages.prepare()  # before any target starts: a bad model or data file fails the build
            except BaseException:
                prefetching.shutdown(wait=True, cancel_futures=True)
                raise
        for p in profiles:
            placement = reuse[p.name]
            if placement is not None:
                futures[p.name] = pool.submit(placement)
        for p in to_build:
            try:
                converted = stages.convert(p)
            except EdgepackError as e:
                finished[p.name] = stages.failed(p, e)
                continue
            futures[p.name] = pool.submit(stages.package, p, converted)
        for p in profiles:
            if p.name in futures:
                try:
                    finished[p.name] = futures[p.name].result()
                except EdgepackError as e:
                    finished[p.name] = stages.failed(p, e)
    return [finished[p.name] for p in profiles]


def _quietly(step: Callable[[TargetProfile], Any], profile: TargetProfile) -> None:
    # The stage that needs what failed here runs it again and reports the error.
    with contextlib.suppress(Exception):
        step(profile)
