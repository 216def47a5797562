"""The version floor: the highest version ever installed, kept outside every slot.

A bundle whose version is below it, or equal to it with other contents, is refused
unless a downgrade is asked for. The floor is raised before the active slot switches,
so no crash can leave a newer version active above a lower floor; re-installing the
very bundle that raised it (the same digest) stays possible after such a crash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..trust.errors import RollbackError
from ..trust.statement import is_version
from ..trust.statement import version_key as statement_version_key
from .fsutil import atomic_write

FLOOR_FILE = "version-floor.json"


def version_key(version: str) -> tuple[int, ...]:
    if not is_version(version):
        raise RollbackError(f"version {version!r} is not dotted numbers: it cannot be ordered")
    return statement_version_key(version)


def read_floor(root: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((root / FLOOR_FILE).read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        # Written atomically, so never torn: unreadable means tampered; only a forced install passes.
        return {"version": "999999999", "digest": "", "unreadable": True}
    return value if isinstance(value, dict) and isinstance(value.get("version"), str) else None


def check_floor(root: Path, version: str, digest: str, active_digest: str | None) -> None:
    floor = read_floor(root)
    if floor is None:
        return
    have, want = version_key(str(floor["version"])), version_key(version)
    if want > have:
        return
    if want == have and digest == floor.get("digest") and digest != active_digest:
        return  # the bundle that raised the floor, interrupted before it became active
    raise RollbackError(
        f"version {version} is not above the installed floor {floor['version']}: "
        "refused as a downgrade (use --allow-downgrade, or `rollback` to the kept version)"
    )


def raise_floor(root: Path, version: str, digest: str) -> None:
    floor = read_floor(root)
    if floor is not None and not floor.get("unreadable"):
        if version_key(version) < version_key(str(floor["version"])):
            return
        if version_key(version) == version_key(str(floor["version"])) and floor.get("digest") == digest:
            return
    data = json.dumps({"version": version, "digest": digest}, sort_keys=True).encode() + b"\n"
    atomic_write(root / FLOOR_FILE, data)
