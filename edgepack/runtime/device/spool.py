"""A bounded on-disk spool of telemetry events, drained in order to an uplink.

Layout of the spool directory::

    seg-000000000001.jsonl   one event per line (JSON, UTF-8), oldest segment first
    seg-000000000002.jsonl   the last segment is the one appended to
    state.json               cursor (segment, byte offset) of the oldest pending event,
                             dropped / reported counts, next sequence number
    lock                     flock'd by the one Spool that owns the directory

Durability: each append is one ``write`` of a whole line to a file opened for append, so a
process crash loses nothing already appended. ``sync_every`` sets the fsync policy: 1 (the
default) fsyncs after every append, N fsyncs after every N appends (a power cut may then lose
up to N-1 events); rotation and ``close`` always fsync. A line torn by a power cut (the last
segment not ending in a newline) is cut off when the spool is next opened and counted as
dropped; a line that is not valid JSON is skipped when drained and counted the same way.

Bound: the segment files together never exceed ``max_bytes``. When an append would pass it,
whole oldest segments (``segment_bytes`` each, at most an eighth of the bound by default)
are deleted, their pending events counted in ``dropped``. ``dropped`` is persisted; the next
drained batch starts with a ``spool_dropped`` event carrying the count not yet reported.

Every event gets ``seq``: a number that grows by one per appended event and survives
restarts, so a receiver can spot duplicates (uplinks deliver at least once) and gaps.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ..telemetry import Sink, TelemetryEvent
from .fsutil import atomic_write, fsync_dir

DROPPED_EVENT = "spool_dropped"
STATE_FILE = "state.json"
LOCK_FILE = "lock"
_SEGMENT = re.compile(r"seg-(\d{12})\.jsonl")

Send = Callable[[list[dict[str, Any]]], "int | None"]


class _Position(NamedTuple):
    """Where a read stopped: after ``lines`` lines, ``skipped`` of them unreadable."""

    segment: int
    offset: int
    lines: int
    skipped: int


class SpoolError(Exception):
    """The spool directory cannot be used (held by another Spool, unreadable state)."""


def _segment_name(number: int) -> str:
    return f"seg-{number:012d}.jsonl"


class Spool:
    """Events on disk until an uplink acknowledges them; one instance per directory."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int = 8 << 20,
        *,
        segment_bytes: int | None = None,
        sync_every: int = 1,
        labels: Mapping[str, Any] | None = None,
    ) -> None:
        """``labels`` are added to the spool's own ``spool_dropped`` events (e.g. the
        artifact digest and version, which ``spool_sink`` adds to every other event)."""
        if max_bytes < 1024:
            raise ValueError(f"max_bytes must be at least 1024, got {max_bytes}")
        if sync_every < 1:
            raise ValueError(f"sync_every must be at least 1, got {sync_every}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = min(segment_bytes or max(max_bytes // 8, 512), max_bytes // 2)
        self.sync_every = sync_every
        self.labels = dict(labels or {})
        self._lock = threading.Lock()  # state below
        self._drain_lock = threading.Lock()  # one drain at a time
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise SpoolError(f"{self.directory}: spool is in use by another process or Spool") from None
        self._writer: int | None = None
        self._unsynced = 0
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # -- opening --------------------------------------------------------------------------

    def _open(self) -> None:
        state = self._read_state()
        self.dropped: int = int(state.get("dropped", 0))
        self._reported = int(state.get("reported", 0))
        self._next_seq = int(state.get("next_seq", 1))
        cursor_segment = int(state.get("segment", 1))
        cursor_offset = int(state.get("offset", 0))
        segments = self._list_segments()
        # Segments wholly behind the cursor were acknowledged; a crash kept them.
        for number in [n for n in segments if n < cursor_segment]:
            (self.directory / _segment_name(number)).unlink(missing_ok=True)
        segments = [n for n in segments if n >= cursor_segment]
        if not segments:
            segments = [max(cursor_segment, 1)]
            (self.directory / _segment_name(segments[0])).touch()
            cursor_segment, cursor_offset = segments[0], 0
        elif cursor_segment < segments[0]:
            cursor_segment, cursor_offset = segments[0], 0
        self._segments = segments
        self._repair_tail()
        head_size = self._size(segments[0])
        self._cursor = (cursor_segment, min(cursor_offset, head_size))
        self._disk_bytes = sum(self._size(n) for n in segments)
        self._pending = self._count_pending()
        last_seq = 0
        for line, _ in self._lines(segments[-1], 0):
            last_seq = _seq_of(line) or last_seq
        self._next_seq = max(self._next_seq, last_seq + 1)
        self._writer = os.open(self._path(segments[-1]), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._save_state()

    def _read_state(self) -> dict[str, Any]:
        path = self.directory / STATE_FILE
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise SpoolError(f"{path}: unreadable spool state: {e}") from None
        if not isinstance(data, dict):
            raise SpoolError(f"{path}: spool state is not a JSON object")
        return data

    def _list_segments(self) -> list[int]:
        found = (_SEGMENT.fullmatch(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def _repair_tail(self) -> None:
        """Cut a torn last line (a crash mid-write) off the last segment; count it dropped."""
        path = self._path(self._segments[-1])
        size = path.stat().st_size
        if size == 0:
            return
        with open(path, "rb+") as f:
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            keep = data.rfind(b"\n") + 1
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        self.dropped += 1

    # -- appending ------------------------------------------------------------------------

    def append(self, event: Mapping[str, Any]) -> None:
        """Add one event (a JSON-able mapping; ``seq`` is set here). An event whose line
        would not fit in a segment is not stored: it is counted in ``dropped``."""
        with self._lock:
            if self._writer is None:
                raise SpoolError(f"{self.directory}: spool is closed")
            record = {**event, "seq": self._next_seq}
            line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode("utf-8")
            if len(line) > self.segment_bytes:
                self.dropped += 1
                self._save_state()
                return
            self._next_seq += 1
            size = self._size(self._segments[-1])
            if size + len(line) > self.segment_bytes:
                self._rotate()
                size = 0
            try:
                written = os.write(self._writer, line)
            except OSError:
                written = -1
            if written != len(line):  # disk full: leave no partial line behind
                os.ftruncate(self._writer, size)
                self._next_seq -= 1
                raise SpoolError(f"{self.directory}: cannot write the event (disk full?)")
            self._disk_bytes += len(line)
            self._pending += 1
            self._unsynced += 1
            if self._unsynced >= self.sync_every:
                os.fsync(self._writer)
                self._unsynced = 0
            if self._disk_bytes > self.max_bytes:
                self._drop_oldest()

    def _rotate(self) -> None:
        assert self._writer is not None
        os.fsync(self._writer)
        os.close(self._writer)
        self._unsynced = 0
        number = self._segments[-1] + 1
        self._writer = os.open(self._path(number), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._segments.append(number)
        fsync_dir(self.directory)

    def _drop_oldest(self) -> None:
        """Delete whole oldest segments until the files fit in ``max_bytes``."""
        doomed = []
        while self._disk_bytes > self.max_bytes and len(self._segments) > 1:
            head = self._segments.pop(0)
            start = self._cursor[1] if self._cursor[0] == head else 0
            lost = sum(1 for _ in self._lines(head, start))
            self._disk_bytes -= self._size(head)
            doomed.append(head)
            self.dropped += lost
            self._pending -= lost
            self._cursor = (self._segments[0], 0)
        self._save_state()  # first: reopening deletes segments behind the cursor anyway
        for head in doomed:
            self._path(head).unlink(missing_ok=True)

    # -- draining -------------------------------------------------------------------------

    def pending(self) -> int:
        """Events appended and not yet acknowledged (the ``spool_dropped`` report excluded)."""
        with self._lock:
            return self._pending

    def drain(self, send: Send, batch: int = 100) -> int:
        """Hand pending events to ``send`` in order, ``batch`` at a time, until none is left.

        ``send`` returns None when it has delivered the whole list, or the number of leading
        events it delivered; those are removed. When ``send`` raises, what it was given stays
        pending and the exception propagates. When events were dropped since the last report,
        a batch starts with ``{"event": "spool_dropped", "dropped": N, "dropped_total": T}``.
        Returns the number of stored events removed."""
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        removed = 0
        with self._drain_lock:
            while True:
                with self._lock:
                    origin = self._cursor
                    events, positions, report, tail = self._read_batch(batch)
                if not events:
                    if tail is None:
                        return removed
                    with self._lock:  # only unreadable lines were left: step over them
                        self._acknowledge(origin, tail, None)
                    continue
                acked = send(events)
                done = len(events) if acked is None else max(0, min(int(acked), len(events)))
                if done == 0:
                    return removed
                stored = done - (1 if report is not None else 0)
                with self._lock:
                    self._acknowledge(origin, positions[stored - 1] if stored > 0 else None, report)
                removed += max(stored, 0)
                if done < len(events):
                    return removed

    def _read_batch(
        self, batch: int
    ) -> tuple[list[dict[str, Any]], list[_Position], int | None, _Position | None]:
        """Up to ``batch`` events from the cursor, the position after each stored one, the
        dropped total being reported (or None) and the position after the last line read."""
        events: list[dict[str, Any]] = []
        positions: list[_Position] = []
        report: int | None = None
        if self.dropped > self._reported:
            report = self.dropped
            events.append(
                {
                    "event": DROPPED_EVENT,
                    "timestamp": time.time(),
                    **self.labels,
                    "dropped": self.dropped - self._reported,
                    "dropped_total": self.dropped,
                }
            )
        lines = skipped = 0
        tail: _Position | None = None
        for number in self._segments:
            if number < self._cursor[0]:
                continue
            start = self._cursor[1] if number == self._cursor[0] else 0
            for line, end in self._lines(number, start):
                lines += 1
                try:
                    event = json.loads(line)
                    if not isinstance(event, dict):
                        raise ValueError("not an object")
                except ValueError:
                    skipped += 1
                    tail = _Position(number, end, lines, skipped)
                    continue
                events.append(event)
                positions.append(_Position(number, end, lines, skipped))
                if len(positions) >= batch:
                    return events, positions, report, tail
        return events, positions, report, tail

    def _acknowledge(self, origin: tuple[int, int], upto: _Position | None, report: int | None) -> None:
        """Move the cursor from ``origin`` past ``upto``; delete segments left behind."""
        if upto is not None and (upto.segment, upto.offset) > self._cursor:
            moved = self._cursor != origin  # a drop during send moved it: recount below
            self._cursor = (upto.segment, upto.offset)
            self.dropped += upto.skipped
            self._pending = self._count_pending() if moved else self._pending - upto.lines
        if report is not None:
            self._reported = report
        doomed = []
        while len(self._segments) > 1 and (
            self._segments[0] < self._cursor[0]
            or (self._cursor[0] == self._segments[0] and self._cursor[1] >= self._size(self._segments[0]))
        ):
            head = self._segments.pop(0)
            self._disk_bytes -= self._size(head)
            doomed.append(head)
            if self._cursor[0] <= head:
                self._cursor = (self._segments[0], 0)
        self._save_state()  # first: reopening deletes segments behind the cursor anyway
        for head in doomed:
            self._path(head).unlink(missing_ok=True)

    # -- files ----------------------------------------------------------------------------

    def _path(self, number: int) -> Path:
        return self.directory / _segment_name(number)

    def _size(self, number: int) -> int:
        try:
            return self._path(number).stat().st_size
        except FileNotFoundError:
            return 0

    def _lines(self, number: int, start: int) -> Any:
        """(line bytes, end offset) of each complete line from ``start``."""
        try:
            with open(self._path(number), "rb") as f:
                f.seek(start)
                offset = start
                for line in f:
                    if not line.endswith(b"\n"):
                        return  # being written by no one (we hold the lock): a torn tail
                    offset += len(line)
                    yield line, offset
        except FileNotFoundError:
            return

    def _count_pending(self) -> int:
        return sum(
            1
            for number in self._segments
            if number >= self._cursor[0]
            for _ in self._lines(number, self._cursor[1] if number == self._cursor[0] else 0)
        )

    def _save_state(self) -> None:
        state = {
            "segment": self._cursor[0],
            "offset": self._cursor[1],
            "dropped": self.dropped,
            "reported": self._reported,
            "next_seq": self._next_seq,
        }
        atomic_write(self.directory / STATE_FILE, json.dumps(state, sort_keys=True).encode("utf-8"))

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Fsync and release the directory; a new Spool on it continues where this one was."""
        with self._lock:
            if self._writer is not None:
                os.fsync(self._writer)
                os.close(self._writer)
                self._writer = None
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _seq_of(line: bytes) -> int | None:
    with contextlib.suppress(ValueError, AttributeError):
        seq = json.loads(line).get("seq")
        if isinstance(seq, int):
            return seq
    return None


def spool_sink(spool: Spool, *, artifact_digest: str, version: str) -> Sink:
    """A telemetry sink storing each event in ``spool`` with the artifact's digest and version."""

    def store(event: TelemetryEvent) -> None:
        spool.append({**event.to_dict(), "artifact_digest": artifact_digest, "version": version})

    return store
