"""Structured logs: one JSON object per line (``ts``, ``level``, ``msg`` and fields)."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO


class JsonLog:
    """Writes to ``stream`` (``sys.stderr`` as it is at each call when ``None``)."""

    def __init__(self, stream: TextIO | None = None, **context: Any) -> None:
        self._stream = stream
        self._context = context
        self._lock = threading.Lock()

    def log(self, level: str, msg: str, **fields: Any) -> None:
        now = time.time()
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        record = {"ts": ts, "level": level, "msg": msg, **self._context, **fields}
        line = json.dumps(record, default=str, separators=(",", ":")) + "\n"
        stream = self._stream if self._stream is not None else sys.stderr
        with self._lock:
            try:
                stream.write(line)
                stream.flush()
            except (OSError, ValueError):
                pass  # a closed stderr must not take the server down

    def info(self, msg: str, **fields: Any) -> None:
        self.log("info", msg, **fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self.log("warning", msg, **fields)

    def error(self, msg: str, **fields: Any) -> None:
        self.log("error", msg, **fields)
