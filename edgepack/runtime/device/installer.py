"""Install a signed bundle on a device so that no failure or crash leaves it without a verified version.

``install_bundle`` (and ``install_files`` for channel installs, from blobs already on the
device or downloaded), in this order, under a lock on the root:

1. clean what an interrupted run left (``slots.clean``);
2. verify the signature before anything is written, then extract (or assemble) into a
   fresh staging directory with the trust reader, which refuses unsafe names, links,
   special files, modes and sizes;
3. refuse another project than the active one, and a version at or below the floor
   (``floor.check_floor``) unless a downgrade is asked for;
4. verify the unpacked tree again from disk (digests and modes), then run its health
   check (``predict.py health``, the golden sample against the recorded outputs);
5. move it into ``slots/``, raise the floor, point ``previous`` at the old active slot
   and ``active`` at the new one (each a symlink renamed into place, then fsync), and
   delete every other slot.

Every refusal or failure leaves the active slot untouched, appends its outcome and reason
to the journal and raises an exit-4 error. The root's layout is in ``slots``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..failures import EdgepackError
from ..hashing import sha256_file
from ..trust.errors import InstallError, RollbackError, VerificationError
from . import floor, journal, slots
from .fsutil import fsync_tree
from .health_run import run_health

if TYPE_CHECKING:
    from ..trust.public_keys import PublicKey

MANIFEST_FILE = "edgepack.json"
ATTESTATION_FILE = "attestation.dsse.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class InstallOptions:
    # The device's interpreter command (arguments before the script): for an aarch64 bundle
    # on an x86_64 host, ("qemu-aarch64", "-L", ROOT, ROOT + "/usr/bin/python3.11").
    python: tuple[str, ...] = field(default_factory=lambda: (sys.executable,))
    allow_downgrade: bool = False
    health_timeout_s: float = 120.0


@dataclass(frozen=True)
class InstallResult:
    version: str
    digest: str
    slot: Path
    outcome: str
    reason: str = ""


def install_bundle(
    root: Path, bundle: Path, keys: Sequence[PublicKey], options: InstallOptions | None = None
) -> InstallResult:
    """Install the signed bundle (``.tar.gz``) at ``bundle`` under ``root``."""
    from ..trust.reader import Expectation, verify_and_extract

    options = options or InstallOptions()
    root = Path(root)
    digest = sha256_file(bundle)

    def unpack(tree: Path, expect: Expectation) -> Any:
        return verify_and_extract(Path(bundle), tree, keys, kind="tar.gz", expect=expect)

    return _install(root, digest, unpack, keys, options, source=str(bundle))


def install_files(
    root: Path,
    envelope_bytes: bytes,
    blob_for: Callable[[str], Path | None],
    keys: Sequence[PublicKey],
    options: InstallOptions | None = None,
) -> InstallResult:
    """Install the version an attestation envelope describes, its files taken from ``blob_for(sha256)``."""
    from ..trust.reader import Expectation, verify_and_assemble

    options = options or InstallOptions()
    digest = hashlib.sha256(envelope_bytes).hexdigest()

    def assemble(tree: Path, expect: Expectation) -> Any:
        return verify_and_assemble(envelope_bytes, blob_for, tree, keys, expect=expect)

    return _install(Path(root), digest, assemble, keys, options, source="channel")


def _install(
    root: Path,
    digest: str,
    unpack: Callable[[Path, Any], Any],
    keys: Sequence[PublicKey],
    options: InstallOptions,
    *,
    source: str,
) -> InstallResult:
    from ..trust.reader import Expectation, verify_tree

    with slots.locked(root):
        slots.clean(root)
        active = slots.link_target(root, slots.ACTIVE)
        active_manifest = _slot_manifest(active) if active is not None else None
        stage = slots.new_stage(root)
        tree = stage / "tree"
        version = "?"
        journaled = False
        try:
            expect = Expectation(name=str(active_manifest["name"]) if active_manifest else None)
            verified = unpack(tree, expect)
            manifest = verified.manifest
            version = str(manifest.get("version", "?"))
            name = manifest.get("name")
            if active_manifest is not None and name != active_manifest.get("name"):
                raise InstallError(
                    f"the bundle is for project {name!r}; this device runs {active_manifest.get('name')!r}"
                )
            if not options.allow_downgrade:
                floor.check_floor(root, version, digest, _active_digest(root, active))
            else:
                floor.version_key(version)
            verify_tree(tree, keys, expect=expect)
            fsync_tree(tree)
            health = run_health(tree, options.python, options.health_timeout_s)
            if not health.ok:
                journal.append(root, _record(version, digest, "health-failed", health.reason, source=source))
                journaled = True
                raise InstallError(
                    f"{version} not installed, {_describe(active_manifest)} stays active: {health.reason}"
                )
        except EdgepackError as e:
            slots.clean(root)
            if not journaled:
                outcome = "refused-downgrade" if isinstance(e, RollbackError) else "refused"
                journal.append(root, _record(version, digest, outcome, e.hint(), source=source))
            raise
        except BaseException:
            slots.clean(root)
            raise
        slot = slots.commit(root, tree, slots.slot_name(version, digest))
        floor.raise_floor(root, version, digest)
        if active is not None:
            slots.point(root, slots.PREVIOUS, active)
        slots.point(root, slots.ACTIVE, slot)
        journal.append(root, _record(version, digest, "installed", "", source=source, slot=slot.name))
        slots.prune(root)
        slots.clean(root)
        return InstallResult(version=version, digest=digest, slot=slot, outcome="installed")


def rollback(
    root: Path, options: InstallOptions | None = None, *, keys: Sequence[PublicKey] = ()
) -> InstallResult:
    """Make the kept previous version active again (allowed below the floor).

    The previous slot is checked from disk first: against the trusted ``keys`` when
    given (signature, digests, modes), else against the digests its own statement records.
    """
    root = Path(root)
    with slots.locked(root):
        slots.clean(root)
        active = slots.link_target(root, slots.ACTIVE)
        previous = slots.link_target(root, slots.PREVIOUS)
        if previous is None or (active is not None and previous.name == active.name):
            raise InstallError(f"{root}: no previous version is kept to roll back to")
        manifest = _slot_manifest(previous)
        version = str(manifest.get("version", "?"))
        digest = _slot_digest(root, previous) or ""
        from ..trust.reader import verify_tree

        try:
            # Without keys, the slot's own statement (its signature checked when it was installed).
            verify_tree(previous, keys, unverified=not keys)
        except VerificationError as e:
            journal.append(root, _record(version, digest, "rollback-refused", e.hint(), source="rollback"))
            raise InstallError(f"the previous slot {previous.name} no longer verifies: {e.hint()}") from e
        slots.point(root, slots.ACTIVE, previous)
        if active is not None:
            slots.point(root, slots.PREVIOUS, active)
        else:
            slots.unlink(root, slots.PREVIOUS)
        journal.append(
            root, _record(version, digest, "rolled-back", "", source="rollback", slot=previous.name)
        )
        return InstallResult(version=version, digest=digest, slot=previous, outcome="rolled-back")


def status(root: Path) -> dict[str, Any]:
    """Active and previous versions, the floor and the journal's last entries (reads only)."""
    root = Path(root)

    def describe(name: str) -> dict[str, Any] | None:
        slot = slots.link_target(root, name)
        if slot is None:
            return None
        try:
            m = _slot_manifest(slot)
        except InstallError as e:
            return {"slot": slot.name, "error": e.hint()}
        target = m.get("target")
        return {
            "name": m.get("name"),
            "version": m.get("version"),
            "target": target.get("name") if isinstance(target, dict) else target,
            "slot": slot.name,
            "path": str(slot),
            "digest": _slot_digest(root, slot),
        }

    return {
        "root": str(root),
        "active": describe(slots.ACTIVE),
        "previous": describe(slots.PREVIOUS),
        "floor": floor.read_floor(root),
        "journal": journal.read(root, last=10),
    }


def present_blobs(root: Path) -> dict[str, Path]:
    """sha256 -> a file holding that content, over the active and previous slots' statements."""
    found: dict[str, Path] = {}
    for name in (slots.PREVIOUS, slots.ACTIVE):
        slot = slots.link_target(Path(root), name)
        if slot is None:
            continue
        try:
            subjects = _slot_subjects(slot)
        except InstallError:
            continue
        for path, sha in subjects.items():
            candidate = slot / path
            if candidate.is_file() and not candidate.is_symlink():
                found[sha] = candidate
    return found


# -- helpers ------------------------------------------------------------------------------


def _record(version: str, digest: str, outcome: str, reason: str, **extra: Any) -> dict[str, Any]:
    return {"version": version, "digest": digest, "outcome": outcome, "reason": reason, **extra}


def _describe(manifest: dict[str, Any] | None) -> str:
    return f"version {manifest.get('version')}" if manifest else "nothing"


def _slot_manifest(slot: Path) -> dict[str, Any]:
    try:
        value = json.loads((slot / MANIFEST_FILE).read_bytes())
    except (OSError, ValueError) as e:
        raise InstallError(f"cannot read {MANIFEST_FILE}: {e}", where=str(slot)) from e
    if not isinstance(value, dict):
        raise InstallError(f"{MANIFEST_FILE} is not an object", where=str(slot))
    return value


def _slot_subjects(slot: Path) -> dict[str, str]:
    """The statement an installed slot carries (its signature verified at install)."""
    from ..trust.statement import verify_statement

    try:
        return verify_statement((slot / ATTESTATION_FILE).read_bytes(), (), unverified=True).subjects
    except (OSError, VerificationError) as e:
        raise InstallError(f"cannot read the slot's statement: {e}", where=str(slot)) from e


def _slot_digest(root: Path, slot: Path) -> str | None:
    for record in reversed(journal.read(root)):
        if record.get("slot") == slot.name and record.get("outcome") == "installed":
            digest = record.get("digest")
            return str(digest) if digest else None
    return None


def _active_digest(root: Path, active: Path | None) -> str | None:
    return _slot_digest(root, active) if active is not None else None
