"""What the telemetry uplinks share: capped exponential backoff and the drain loop."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .spool import Spool


class UplinkError(Exception):
    """A batch was not delivered (the spool keeps it)."""


@dataclass
class Backoff:
    """Delays of ``initial * factor**n``, capped at ``cap``, with up to ``jitter`` of each
    delay taken off at random (so a fleet does not reconnect in step); ``reset`` on success."""

    initial: float = 0.5
    cap: float = 60.0
    factor: float = 2.0
    jitter: float = 0.2
    failures: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.cap and self.factor >= 1 and 0 <= self.jitter < 1):
            raise ValueError("backoff needs 0 < initial <= cap, factor >= 1, 0 <= jitter < 1")

    def next_delay(self) -> float:
        delay = min(self.cap, self.initial * self.factor ** min(self.failures, 64))
        self.failures += 1
        return delay * (1 - self.jitter * random.random())

    def reset(self) -> None:
        self.failures = 0


def pump(
    spool: Spool,
    send: Callable[[list[dict[str, Any]]], Any],
    stop: threading.Event,
    *,
    backoff: Backoff | None = None,
    idle_s: float = 1.0,
    batch: int = 100,
    on_error: Callable[[BaseException], None] | None = None,
    reconnect: Callable[[], None] | None = None,
) -> None:
    """Drain ``spool`` through ``send`` until ``stop`` is set: after a failure wait the next
    backoff delay (and call ``reconnect``), when the spool is empty wait ``idle_s``."""
    backoff = backoff or Backoff()
    while not stop.is_set():
        try:
            spool.drain(send, batch=batch)
        except Exception as e:  # any uplink failure means: retry later
            if on_error is not None:
                on_error(e)
            if reconnect is not None:
                reconnect()
            stop.wait(backoff.next_delay())
            continue
        backoff.reset()
        stop.wait(idle_s)
