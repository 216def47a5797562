"""The check every build test runs on its artifacts' SBOM (tests/test_sbom.py tests sbom.py itself)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from edgepack.artifact_files import read_artifact
from edgepack.sbom import SBOM_FILE, purl
from edgepack.signing.verify import verify_artifact


def check_artifact_sbom(artifact: Path, keys: list[Any], *, licences: bool = True) -> dict[str, Any]:
    """The artifact's ``sbom.cdx.json`` is a signed subject, valid CycloneDX 1.6, and lists
    exactly the packages its manifest says it vendors, with wheel hashes (and licences)."""
    verified = verify_artifact(artifact, keys)
    _, files = read_artifact(artifact, lambda name: name == SBOM_FILE)
    data = files[SBOM_FILE]
    assert verified.subjects[SBOM_FILE] == hashlib.sha256(data).hexdigest()
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode("utf-8"))
    assert error is None, str(error)
    sbom: dict[str, Any] = json.loads(data)
    packages = verified.manifest["runtime"]["packages"]
    components = sbom["components"]
    listed = sorted((c["name"], c["version"], c["purl"], c["hashes"][0]["content"]) for c in components)
    expected = [(p["name"], p["version"], purl(p["name"], p["version"]), p["sha256"]) for p in packages]
    assert listed == sorted(expected)
    if licences:
        assert all(c.get("licenses") for c in components), "a component has no licence"
    return sbom
