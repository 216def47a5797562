"""``sbom.cdx.json``: a CycloneDX 1.6 SBOM of what an artifact vendors, at its root.

Written beside ``edgepack.json`` (``write_manifest`` calls ``write_sbom``), so it exists
before the attestation is made and is one of its signed subjects, in every kind of
artifact. One component per package the manifest lists under ``runtime.packages``: name,
version, ``pkg:pypi`` purl, the wheel's sha256 and the licences its ``*.dist-info/METADATA``
declares (``License-Expression``, else ``License`` and the ``License ::`` classifiers).

Deterministic: the timestamp is the build's ``source_date_epoch`` and the serial number
is a UUID derived from the rest of the document.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from . import __version__

SBOM_FILE = "sbom.cdx.json"
SPEC_VERSION = "1.6"
_ARTIFACT_REF = "edgepack-artifact"
_MAX_LICENSE_NAME = 200  # a ``License:`` field holding a whole licence text is not a name


def purl(name: str, version: str) -> str:
    """``pkg:pypi/<name>@<version>``, the name normalised as the purl spec says for PyPI."""
    return f"pkg:pypi/{canonicalize_name(name)}@{version}"


def _dist_infos(root: Path) -> dict[str, Path]:
    """Canonical distribution name -> its ``.dist-info`` directory (root, or python/ in a layer)."""
    found: dict[str, Path] = {}
    for tree in (root, root / "python"):
        for info in sorted(tree.glob("*.dist-info")) if tree.is_dir() else ():
            metadata = info / "METADATA"
            if metadata.is_file():
                name = _headers(metadata)["Name"]
                if name:
                    found.setdefault(canonicalize_name(str(name)), info)
    return found


def _headers(path: Path) -> Any:
    return HeaderParser().parsestr(path.read_text(encoding="utf-8", errors="replace"))


def licenses(metadata: Path) -> list[dict[str, Any]]:
    """CycloneDX ``licenses`` from a METADATA file: the SPDX expression when declared, else
    the ``License`` field (when it is a name, not a text) and the licence classifiers."""
    meta = _headers(metadata)
    expression = str(meta.get("License-Expression") or "").strip()
    if expression:
        return [{"expression": expression}]
    names: list[str] = []
    declared = str(meta.get("License") or "").strip()
    if declared and "\n" not in declared and len(declared) <= _MAX_LICENSE_NAME and declared != "UNKNOWN":
        names.append(declared)
    for classifier in meta.get_all("Classifier") or []:
        parts = [p.strip() for p in str(classifier).split("::")]
        if parts[0] == "License" and len(parts) > 1 and parts[-1] != "OSI Approved":
            names.append(parts[-1])
    return [{"license": {"name": n}} for n in dict.fromkeys(names)]


def _component(package: Mapping[str, Any], info: Path | None) -> dict[str, Any]:
    name, version = str(package["name"]), str(package["version"])
    ref = purl(name, version)
    component: dict[str, Any] = {
        "type": "library",
        "bom-ref": ref,
        "name": name,
        "version": version,
        "purl": ref,
    }
    digest = str(package.get("sha256") or "")
    record = info / "RECORD" if info is not None else None
    # vendoring falls back to the RECORD's digest when the installer named no wheel: not a wheel hash.
    if record is not None and record.is_file() and hashlib.sha256(record.read_bytes()).hexdigest() == digest:
        digest = ""
    if digest:
        component["hashes"] = [{"alg": "SHA-256", "content": digest}]
    if info is not None:
        found = licenses(info / "METADATA")
        if found:
            component["licenses"] = found
    properties = [{"name": "edgepack:wheel", "value": str(package.get("wheel") or "")}]
    component["properties"] = [p for p in properties if p["value"]]
    return component


def sbom_dict(root: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The SBOM for the artifact being assembled at ``root`` with ``manifest``."""
    runtime = manifest.get("runtime") or {}
    packages = sorted(runtime.get("packages") or [], key=lambda p: canonicalize_name(str(p["name"])))
    infos = _dist_infos(Path(root))
    components = [_component(p, infos.get(canonicalize_name(str(p["name"])))) for p in packages]
    epoch = int((manifest.get("build") or {}).get("source_date_epoch") or 0)
    target = manifest.get("target") or {}
    subject: dict[str, Any] = {
        "type": "application",
        "bom-ref": _ARTIFACT_REF,
        "name": str(manifest.get("name") or ""),
        "version": str(manifest.get("version") or ""),
    }
    if target.get("name"):
        subject["properties"] = [{"name": "edgepack:target", "value": str(target["name"])}]
    body: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": {
            "timestamp": datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "edgepack", "version": __version__}]},
            "component": subject,
        },
        "components": components,
        "dependencies": [
            {"ref": _ARTIFACT_REF, "dependsOn": [c["bom-ref"] for c in components]},
            *({"ref": c["bom-ref"]} for c in components),
        ],
    }
    content = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
    serial = uuid.uuid5(uuid.NAMESPACE_URL, "edgepack-sbom:" + hashlib.sha256(content).hexdigest())
    return {"bomFormat": "CycloneDX", "specVersion": SPEC_VERSION, "serialNumber": serial.urn, **body}


def write_sbom(root: Path, manifest: Mapping[str, Any]) -> Path:
    path = Path(root) / SBOM_FILE
    path.write_text(json.dumps(sbom_dict(root, manifest), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
