"""Writing ``edgepack.json``, the manifest at the root of every artifact.

The runtime reads the same file with :class:`edgepack.runtime.manifest.Manifest`; the
sections it needs are built from the runtime's own dataclasses so the two cannot drift.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import __version__
from .runtime.manifest import MANIFEST_FILE, MANIFEST_SCHEMA, ModelSection, RuntimeSection
from .sbom import write_sbom
from .targets import TargetProfile


def iso_time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ManifestInputs:
    name: str
    version: str
    target: TargetProfile
    model: ModelSection
    model_details: Mapping[str, Any]
    variant: str
    source: Mapping[str, Any]  # original model: file, format, sha256
    runtime: RuntimeSection
    entrypoint: str | None
    packages: list[dict[str, Any]]
    trimmed: list[str]
    fidelity: Mapping[str, Any]
    sample: Mapping[str, Any]
    hooks: str | None
    telemetry: Mapping[str, Any]
    epoch: int
    tool_versions: Mapping[str, str]
    extra_runtime: Mapping[str, Any]
    function: Mapping[str, Any] | None = None  # Lambda targets: config.FunctionSpec


def manifest_dict(m: ManifestInputs) -> dict[str, Any]:
    t = m.target
    runtime = m.runtime.to_dict()
    runtime.update(
        {
            "entrypoint": m.entrypoint,
            "packages": m.packages,
            "device_packages": list(t.device_packages),
            "trimmed": m.trimmed,
            **m.extra_runtime,
        }
    )
    model = m.model.to_dict()
    model.update({"variant": m.variant, "source": dict(m.source), "details": dict(m.model_details)})
    return {
        "schema": MANIFEST_SCHEMA,
        "name": m.name,
        "version": m.version,
        "target": {
            "name": t.name,
            "kind": t.kind,
            "arch": t.arch,
            "python": t.python,
            "lambda_runtime": t.lambda_runtime,
            "glibc": t.glibc,
            "platform_tags": t.platform_tags,
            "packager": t.packager,
        },
        "model": model,
        "runtime": runtime,
        "fidelity": dict(m.fidelity),
        "sample": dict(m.sample),
        "hooks": m.hooks,
        "telemetry": dict(m.telemetry),
        **({"function": dict(m.function)} if m.function is not None else {}),
        "build": {
            "built_at": iso_time(m.epoch),
            "source_date_epoch": m.epoch,
            "edgepack_version": __version__,
            "tool_versions": dict(sorted(m.tool_versions.items())),
        },
    }


def write_manifest(root: Path, data: Mapping[str, Any]) -> Path:
    """``edgepack.json`` and, beside it, the SBOM of the packages it lists (``sbom.py``)."""
    path = root / MANIFEST_FILE
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_sbom(root, data)
    return path
