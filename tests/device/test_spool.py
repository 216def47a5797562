"""The device telemetry spool: bound, rotation, dropped count, restart, torn lines."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from edgepack.runtime.device.spool import DROPPED_EVENT, Spool, SpoolError, spool_sink
from edgepack.runtime.telemetry import Telemetry


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("seg-*.jsonl"))


def _disk(directory: Path) -> int:
    return sum(p.stat().st_size for p in _segments(directory))


class Collector:
    """An uplink that keeps what it is sent; optionally refuses or acknowledges a part."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail = False
        self.partial: int | None = None

    def __call__(self, events: list[dict[str, Any]]) -> int | None:
        if self.fail:
            raise ConnectionError("uplink down")
        if self.partial is not None:
            self.received.extend(events[: self.partial])
            return self.partial
        self.received.extend(events)
        return None

    def numbers(self) -> list[int]:
        return [e["n"] for e in self.received if e.get("event") != DROPPED_EVENT]


def test_events_drain_in_order_with_sequence_numbers(tmp_path: Path) -> None:
    with Spool(tmp_path / "s") as spool:
        for n in range(250):
            spool.append({"event": "inference", "n": n})
        assert spool.pending() == 250
        sent = Collector()
        assert spool.drain(sent, batch=40) == 250
        assert sent.numbers() == list(range(250))
        assert [e["seq"] for e in sent.received] == list(range(1, 251))
        assert spool.pending() == 0
        assert spool.drain(sent) == 0


def test_send_raising_leaves_everything_pending(tmp_path: Path) -> None:
    with Spool(tmp_path / "s") as spool:
        for n in range(10):
            spool.append({"n": n})
        sent = Collector()
        sent.fail = True
        with pytest.raises(ConnectionError):
            spool.drain(sent)
        assert spool.pending() == 10
        sent.fail = False
        spool.drain(sent)
        assert sent.numbers() == list(range(10))


def test_partial_acknowledgement_removes_only_the_acknowledged(tmp_path: Path) -> None:
    with Spool(tmp_path / "s") as spool:
        for n in range(10):
            spool.append({"n": n})
        sent = Collector()
        sent.partial = 3
        assert spool.drain(sent, batch=5) == 3
        assert spool.pending() == 7
        sent.partial = None
        spool.drain(sent)
        assert sent.numbers() == list(range(10))


def test_segments_rotate_and_acknowledged_ones_are_deleted(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    with Spool(directory, max_bytes=64 << 10, segment_bytes=1024) as spool:
        for n in range(100):
            spool.append({"n": n, "pad": "x" * 50})
        assert len(_segments(directory)) > 5
        assert all(p.stat().st_size <= 1024 for p in _segments(directory))
        spool.drain(Collector())
        assert len(_segments(directory)) == 1  # the one being appended to


def test_the_bound_drops_the_oldest_events_and_reports_the_count(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    bound = 8 << 10
    with Spool(directory, max_bytes=bound, labels={"artifact_digest": "d" * 64, "version": "1.2.3"}) as spool:
        for n in range(1000):
            spool.append({"event": "inference", "n": n, "pad": "y" * 40})
            assert _disk(directory) <= bound
        assert spool.dropped > 0
        assert spool.pending() + spool.dropped == 1000
        dropped = spool.dropped
        sent = Collector()
        spool.drain(sent)
    report = sent.received[0]
    assert report["event"] == DROPPED_EVENT
    assert report["dropped"] == dropped and report["dropped_total"] == dropped
    assert report["artifact_digest"] == "d" * 64 and report["version"] == "1.2.3"
    kept = sent.numbers()
    assert kept == list(range(1000 - len(kept), 1000))  # the newest survive, in order
    assert len(kept) + dropped == 1000
    with Spool(directory, max_bytes=bound) as again:  # reported once, persisted
        assert again.dropped == dropped
        sent = Collector()
        again.append({"n": 1000})
        again.drain(sent)
        assert sent.numbers() == [1000]
        assert all(e.get("event") != DROPPED_EVENT for e in sent.received)


def test_a_failed_report_is_sent_again(tmp_path: Path) -> None:
    with Spool(tmp_path / "s", max_bytes=2048, segment_bytes=512) as spool:
        for n in range(300):
            spool.append({"n": n})
        assert spool.dropped > 0
        failing = Collector()
        failing.fail = True
        with pytest.raises(ConnectionError):
            spool.drain(failing)
        sent = Collector()
        sent.partial = 1  # only the report gets through
        spool.drain(sent)
        assert [e["event"] for e in sent.received] == [DROPPED_EVENT]
        sent.partial = None
        spool.drain(sent)
        assert sum(e.get("event") == DROPPED_EVENT for e in sent.received) == 1


def test_an_event_larger_than_a_segment_is_counted_not_stored(tmp_path: Path) -> None:
    with Spool(tmp_path / "s", max_bytes=4096, segment_bytes=1024) as spool:
        spool.append({"n": 0, "blob": "z" * 5000})
        assert spool.pending() == 0 and spool.dropped == 1


def test_a_restart_continues_where_the_last_spool_stopped(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    with Spool(directory, segment_bytes=600) as spool:
        for n in range(30):
            spool.append({"n": n})
        sent = Collector()
        sent.partial = 12
        spool.drain(sent, batch=20)
    with Spool(directory, segment_bytes=600) as spool:
        assert spool.pending() == 18
        for n in range(30, 40):
            spool.append({"n": n})
        rest = Collector()
        spool.drain(rest)
    assert sent.numbers() + rest.numbers() == list(range(40))
    assert [e["seq"] for e in sent.received + rest.received] == list(range(1, 41))


def test_a_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    with Spool(directory) as spool:
        for n in range(5):
            spool.append({"n": n})
    with _segments(directory)[-1].open("ab") as f:
        f.write(b'{"n": 5, "seq": 6, "trunc')  # a power cut mid-write
    with Spool(directory) as spool:
        assert spool.dropped == 1 and spool.pending() == 5
        spool.append({"n": 6})
        sent = Collector()
        spool.drain(sent)
    assert sent.received[0]["event"] == DROPPED_EVENT and sent.received[0]["dropped"] == 1
    assert sent.numbers() == [0, 1, 2, 3, 4, 6]


def test_an_unreadable_line_is_skipped_and_counted(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    with Spool(directory) as spool:
        spool.append({"n": 0})
    with _segments(directory)[-1].open("ab") as f:
        f.write(b"not json\n[1, 2]\n")
    with Spool(directory) as spool:
        spool.append({"n": 1})
        sent = Collector()
        spool.drain(sent)
        assert sent.numbers() == [0, 1]
        assert spool.dropped == 2 and spool.pending() == 0
        # Counted when stepped over, and reported in the same drain.
        assert sent.received[-1] == {**sent.received[-1], "event": DROPPED_EVENT, "dropped": 2}


def test_a_second_spool_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    with Spool(tmp_path / "s"), pytest.raises(SpoolError, match="in use"):
        Spool(tmp_path / "s")


def test_unreadable_state_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    directory.mkdir()
    (directory / "state.json").write_text("{broken")
    with pytest.raises(SpoolError, match="unreadable spool state"):
        Spool(directory)
    (directory / "state.json").write_text("[1]")
    with pytest.raises(SpoolError, match="not a JSON object"):
        Spool(directory)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_bytes": 10}, "max_bytes"), ({"sync_every": 0}, "sync_every")],
)
def test_bad_settings_are_refused(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Spool(tmp_path / "s", **kwargs)


def test_bad_batch_is_refused(tmp_path: Path) -> None:
    with Spool(tmp_path / "s") as spool, pytest.raises(ValueError, match="batch"):
        spool.drain(Collector(), batch=0)


def test_appending_to_a_closed_spool_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s")
    spool.close()
    with pytest.raises(SpoolError, match="closed"):
        spool.append({"n": 0})


def test_sync_every_batches_fsyncs_without_losing_order(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    with Spool(directory, sync_every=16) as spool:
        for n in range(50):
            spool.append({"n": n})
    with Spool(directory) as spool:
        sent = Collector()
        spool.drain(sent)
    assert sent.numbers() == list(range(50))


def test_appends_during_a_drain_are_kept(tmp_path: Path) -> None:
    with Spool(tmp_path / "s", segment_bytes=800) as spool:
        for n in range(50):
            spool.append({"n": n})
        received: list[int] = []
        writer_done = threading.Event()

        def send(events: list[dict[str, Any]]) -> None:
            if not writer_done.is_set():

                def write() -> None:
                    for n in range(50, 100):
                        spool.append({"n": n})
                    writer_done.set()

                threading.Thread(target=write).start()
                writer_done.wait()
            received.extend(e["n"] for e in events)

        spool.drain(send, batch=10)
        assert received == list(range(100))


def test_spool_sink_stamps_digest_and_version(tmp_path: Path) -> None:
    with Spool(tmp_path / "s") as spool:
        telemetry = Telemetry([spool_sink(spool, artifact_digest="a" * 64, version="2.0.0")])
        telemetry.emit("inference", latency_ms=1.5, batch_size=1)
        telemetry.emit("error", stage="predict", code="x", status=500, message="m")
        sent = Collector()
        spool.drain(sent)
    assert telemetry.dropped == 0
    assert [e["event"] for e in sent.received] == ["inference", "error"]
    for event in sent.received:
        assert event["artifact_digest"] == "a" * 64 and event["version"] == "2.0.0"
        assert isinstance(event["timestamp"], float)
    assert json.loads(json.dumps(sent.received)) == sent.received


def test_segments_left_behind_the_cursor_by_a_crash_are_not_sent_again(tmp_path: Path) -> None:
    """State is saved before acknowledged segments are deleted: a crash in between leaves
    files behind the cursor, which the next open deletes instead of sending them twice."""
    directory = tmp_path / "s"
    with Spool(directory, segment_bytes=600) as spool:
        for n in range(40):
            spool.append({"n": n, "pad": "x" * 40})
        first = _segments(directory)[0]
        kept = first.read_bytes()
        sent = Collector()
        sent.partial = 30
        spool.drain(sent, batch=35)
    assert not first.exists()
    first.write_bytes(kept)  # as if the crash came before the unlink
    with Spool(directory, segment_bytes=600) as spool:
        assert not first.exists()
        assert spool.pending() == 10
        rest = Collector()
        spool.drain(rest)
    assert rest.numbers() == list(range(30, 40))
