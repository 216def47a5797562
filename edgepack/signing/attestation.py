"""The artifact's attestation: an in-toto Statement v1 with a SLSA provenance v1 predicate.

Subjects are every file of the artifact (relative POSIX path + sha256, and its mode,
0644 or 0755, as ``annotations.mode``) except the attestation itself; the statement is
signed into a DSSE envelope and written, as deterministic JSON, to ``attestation.dsse.json``
at the artifact root.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..cache import sha256_file
from ..errors import PackagingError
from ..packaging.archive import file_mode, iter_tree, source_date_epoch
from ..runtime.manifest import ATTESTATION_FILE, MANIFEST_FILE
from ..runtime.trust.statement import DIR_MODE, PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE, mode_text
from .dsse import sign_envelope
from .keys import Signer

BUILD_TYPE = "https://edgepack.dev/buildtypes/artifact/v1"
BUILDER_ID = "https://edgepack.dev/builder/edgepack"


def _rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Provenance:
    """What went into a build, for the SLSA provenance predicate.

    ``packages`` are the vendored runtime packages as the manifest records them
    (``name``, ``version``, ``wheel``, ``sha256``). Times come from ``epoch``
    (``SOURCE_DATE_EPOCH``), so a rebuild attests the same bytes.
    """

    project: str
    version: str
    target: str
    model_name: str
    model_sha256: str
    config_sha256: str
    data_sha256: Mapping[str, str] = field(default_factory=dict)  # role (calibration, validation) -> sha256
    packages: Sequence[Mapping[str, Any]] = ()
    edgepack_version: str = __version__
    epoch: int = field(default_factory=source_date_epoch)
    config_name: str = "edgepack.yaml"
    tool_versions: Mapping[str, str] = field(default_factory=dict)

    @property
    def builder_id(self) -> str:
        return f"{BUILDER_ID}@v{self.edgepack_version}"

    def resolved_dependencies(self) -> list[dict[str, Any]]:
        deps: list[dict[str, Any]] = [
            {
                "name": self.model_name,
                "digest": {"sha256": self.model_sha256},
                "annotations": {"role": "model"},
            },
            {
                "name": self.config_name,
                "digest": {"sha256": self.config_sha256},
                "annotations": {"role": "config"},
            },
        ]
        for role, digest in sorted(self.data_sha256.items()):
            deps.append({"name": role, "digest": {"sha256": digest}, "annotations": {"role": "data"}})
        for pkg in sorted(self.packages, key=lambda p: (str(p.get("name")), str(p.get("version")))):
            dep: dict[str, Any] = {
                "name": str(pkg.get("wheel") or pkg["name"]),
                "uri": f"pkg:pypi/{pkg['name']}@{pkg.get('version', '')}".rstrip("@"),
                "annotations": {"role": "runtime-package"},
            }
            if pkg.get("sha256"):
                dep["digest"] = {"sha256": str(pkg["sha256"])}
            deps.append(dep)
        return deps

    def predicate(self) -> dict[str, Any]:
        """SLSA provenance v1: ``buildDefinition`` and ``runDetails``."""
        build_definition: dict[str, Any] = {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "project": {"name": self.project, "version": self.version},
                "target": self.target,
                "config": self.config_name,
            },
            "resolvedDependencies": self.resolved_dependencies(),
        }
        if self.tool_versions:
            build_definition["internalParameters"] = {"toolVersions": dict(self.tool_versions)}
        when = _rfc3339(self.epoch)
        return {
            "buildDefinition": build_definition,
            "runDetails": {
                "builder": {"id": self.builder_id, "version": {"edgepack": self.edgepack_version}},
                "metadata": {"startedOn": when, "finishedOn": when},
            },
        }


def build_statement(
    subjects: Mapping[str, str], provenance: Provenance, modes: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """An in-toto Statement v1: ``subjects`` (path -> sha256 hex) sorted by name, each with its
    mode (``modes``, path -> 0o644 | 0o755; 0644 when not given), SLSA predicate."""
    modes = modes or {}
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": name,
                "digest": {"sha256": subjects[name]},
                "annotations": {"mode": mode_text(modes.get(name, 0o644))},
            }
            for name in sorted(subjects)
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": provenance.predicate(),
    }


def tree_subjects(root: Path) -> dict[str, str]:
    """Relative POSIX path -> sha256 of every file under ``root`` but the attestation itself.

    Symlinks, special files and unsafe names are refused (``PackagingError``).
    """
    return {name: sha256_file(path) for name, path in iter_tree(Path(root)) if name != ATTESTATION_FILE}


def normalise_modes(root: Path) -> dict[str, int]:
    """Give every file under ``root`` its artifact mode (0755 for executables and shared objects,
    else 0644) and every directory 0755, on disk; return path -> mode for the files."""
    root = Path(root)
    modes: dict[str, int] = {}
    for name, path in iter_tree(root):
        mode = file_mode(path, path.stat().st_mode)
        os.chmod(path, mode)
        modes[name] = mode
    for path in [root, *(p for p in root.rglob("*") if p.is_dir() and not p.is_symlink())]:
        os.chmod(path, DIR_MODE)
    return modes


def write_envelope(root: Path, envelope: Mapping[str, Any]) -> Path:
    """Write ``envelope`` as ``root/attestation.dsse.json`` (sorted keys, 2-space, newline), atomically."""
    dest = Path(root) / ATTESTATION_FILE
    text = json.dumps(envelope, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{ATTESTATION_FILE}.", suffix=".tmp", dir=root)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def attest_tree(root: Path, signer: Signer, provenance: Provenance) -> Path:
    """Hash every file under ``root``, sign the statement, write ``attestation.dsse.json``.

    Returns the attestation's path. The manifest must already be in ``root``.
    """
    root = Path(root)
    modes = normalise_modes(root)
    subjects = tree_subjects(root)
    if MANIFEST_FILE not in subjects:
        raise PackagingError(f"{root}: no {MANIFEST_FILE} to attest; write the manifest first")
    statement = build_statement(subjects, provenance, modes)
    envelope = sign_envelope(canonical_json(statement), PAYLOAD_TYPE, signer)
    return write_envelope(root, envelope)
