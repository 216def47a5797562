"""The install journal: one JSON object per line, appended and fsynced, never rewritten.

A line torn by a power cut is skipped when read.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

JOURNAL_FILE = "journal.jsonl"


def append(root: Path, record: Mapping[str, Any]) -> None:
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
    line = (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
    fd = os.open(root / JOURNAL_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        # A torn previous line (no newline at its end) must not swallow this one.
        if os.fstat(fd).st_size and _ends_without_newline(root / JOURNAL_FILE):
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _ends_without_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def read(root: Path, last: int | None = None) -> list[dict[str, Any]]:
    try:
        lines = (root / JOURNAL_FILE).read_bytes().splitlines()
    except FileNotFoundError:
        return []
    records: list[dict[str, Any]] = []
    for raw in lines:
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records[-last:] if last else records
