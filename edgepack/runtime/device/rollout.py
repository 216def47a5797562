"""Staged rollout: which devices take a channel entry at a given percentage.

A device's bucket is a stable hash of its id, the project name and the version, so the
same device answers the same way on every poll, and raising the percentage only adds
devices (a device in at 5 % is still in at 50 %). Hashing the version in spreads the
early adopters: a different 5 % of the fleet goes first for each release.
"""

from __future__ import annotations

import hashlib

BUCKETS = 10_000


def bucket(device_id: str, name: str, version: str) -> int:
    """The device's bucket in ``[0, 10000)`` for this release."""
    digest = hashlib.sha256(f"{device_id}\0{name}\0{version}".encode()).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def eligible(device_id: str, name: str, version: str, percent: float) -> bool:
    """Whether the device takes the release at ``percent`` (0 to 100, hundredths count)."""
    return bucket(device_id, name, version) < round(percent * 100)
