"""The CycloneDX SBOM every artifact carries: valid, exact, deterministic, signed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from edgepack.cache import BuildCache
from edgepack.errors import VerificationError
from edgepack.manifest import write_manifest
from edgepack.sbom import SBOM_FILE, licenses, purl, sbom_dict
from edgepack.signing.attestation import Provenance, attest_tree
from edgepack.signing.keys import Ed25519FileSigner, generate_keypair, load_public_keys
from edgepack.signing.verify import verify_artifact
from edgepack.targets import load_target
from edgepack.vendoring import vendor

EPOCH = 1_700_000_000


def validate(text: str) -> None:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, str(error)


def _manifest(packages: list[dict[str, Any]], epoch: int = EPOCH) -> dict[str, Any]:
    return {
        "schema": "edgepack.manifest/v1",
        "name": "digits",
        "version": "1.0.0",
        "target": {"name": "lambda-x86_64"},
        "runtime": {"backend": "litert", "packages": packages},
        "build": {"source_date_epoch": epoch},
    }


@pytest.fixture(scope="module")
def vendored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """The lambda-x86_64 runtime packages, vendored for real into a staging tree."""
    staging = tmp_path_factory.mktemp("staging")
    report = vendor(load_target("lambda-x86_64"), staging, BuildCache(tmp_path_factory.mktemp("cache")))
    return staging, [p.to_dict() for p in report.packages]


def test_the_sbom_validates_and_lists_exactly_the_vendored_packages(
    vendored: tuple[Path, list[dict[str, Any]]],
) -> None:
    staging, packages = vendored
    write_manifest(staging, _manifest(packages))
    text = (staging / SBOM_FILE).read_text()
    validate(text)
    sbom = json.loads(text)
    assert sbom["specVersion"] == "1.6"
    assert sbom["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"  # SOURCE_DATE_EPOCH
    assert sbom["metadata"]["component"]["name"] == "digits"
    components = {c["name"]: c for c in sbom["components"]}
    assert sorted(components) == sorted(p["name"] for p in packages)
    for p in packages:
        c = components[p["name"]]
        assert c["version"] == p["version"]
        assert c["purl"] == purl(p["name"], p["version"]) and c["purl"].startswith("pkg:pypi/")
        assert c["hashes"] == [{"alg": "SHA-256", "content": p["sha256"]}]
        assert {"name": "edgepack:wheel", "value": p["wheel"]} in c["properties"]
        assert c["licenses"], f"{p['name']} has no licence"
    assert components["numpy"]["licenses"][0]["expression"].startswith("BSD-3-Clause")
    assert {"license": {"name": "Apache Software License"}} in components["ai-edge-litert"]["licenses"]
    assert {"license": {"name": "MIT License"}} in components["aws_lambda_powertools"]["licenses"]
    root_deps = sbom["dependencies"][0]
    assert sorted(root_deps["dependsOn"]) == sorted(c["bom-ref"] for c in sbom["components"])


def test_the_sbom_is_deterministic(vendored: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    staging, packages = vendored
    first = json.dumps(sbom_dict(staging, _manifest(packages)), sort_keys=True)
    assert json.dumps(sbom_dict(staging, _manifest(packages)), sort_keys=True) == first
    later = sbom_dict(staging, _manifest(packages, epoch=EPOCH + 60))
    assert later["metadata"]["timestamp"] == "2023-11-14T22:14:20Z"
    assert later["serialNumber"] != json.loads(first)["serialNumber"]  # derived from the content
    assert json.loads(first)["serialNumber"].startswith("urn:uuid:")


def test_the_sbom_is_a_signed_subject(vendored: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    staging, packages = vendored
    root = tmp_path / "artifact"
    root.mkdir()
    (root / "handler.py").write_text("print('hi')\n")
    for info in staging.glob("numpy*.dist-info"):
        shutil.copytree(info, root / info.name)
    write_manifest(root, _manifest([p for p in packages if p["name"] == "numpy"]))
    key, pub = generate_keypair(tmp_path / "k")
    provenance = Provenance(
        project="digits", version="1.0.0", target="lambda-x86_64", model_name="m",
        model_sha256="a" * 64, config_sha256="b" * 64, epoch=EPOCH,
    )  # fmt: skip
    attest_tree(root, Ed25519FileSigner.from_file(key), provenance)
    keys = load_public_keys([pub])
    verified = verify_artifact(root, keys)
    assert SBOM_FILE in verified.subjects
    sbom = json.loads((root / SBOM_FILE).read_text())
    sbom["components"][0]["licenses"] = [{"expression": "MIT"}]  # a more convenient licence
    (root / SBOM_FILE).write_text(json.dumps(sbom, indent=2, sort_keys=True) + "\n")
    with pytest.raises(VerificationError):
        verify_artifact(root, keys)
    (root / SBOM_FILE).unlink()
    with pytest.raises(VerificationError):
        verify_artifact(root, keys)


def test_a_layer_tree_finds_licences_under_python(
    vendored: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    staging, packages = vendored
    layer = tmp_path / "layer"
    (layer / "python").mkdir(parents=True)
    for info in staging.glob("*.dist-info"):
        shutil.copytree(info, layer / "python" / info.name)
    sbom = sbom_dict(layer, _manifest(packages))
    validate(json.dumps(sbom))
    assert all(c.get("licenses") for c in sbom["components"])


def _dist_info(root: Path, name: str, headers: str, record: bytes = b"x,,\n") -> Path:
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.4\nName: {name}\nVersion: 1.0\n{headers}\n")
    (info / "RECORD").write_bytes(record)
    return info


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ("License-Expression: Apache-2.0 OR MIT\nLicense: ignored", [{"expression": "Apache-2.0 OR MIT"}]),
        ("License: BSD\nClassifier: License :: OSI Approved :: BSD License",
         [{"license": {"name": "BSD"}}, {"license": {"name": "BSD License"}}]),
        ("License: UNKNOWN\nClassifier: License :: OSI Approved", []),
        ("License: " + "x" * 300, []),  # a licence text, not a name
        ("License: Copyright (c) someone\n        all rights reserved", []),  # folded: a text
        ("Classifier: License :: Other/Proprietary License",
         [{"license": {"name": "Other/Proprietary License"}}]),
        ("Classifier: Programming Language :: Python", []),
    ],
)  # fmt: skip
def test_licences_from_metadata(tmp_path: Path, headers: str, expected: list[dict[str, Any]]) -> None:
    info = _dist_info(tmp_path, "pkg", headers)
    assert licenses(info / "METADATA") == expected


def test_odd_packages_still_give_a_valid_sbom(tmp_path: Path) -> None:
    import hashlib

    record = b"pkg/__init__.py,,\n"
    _dist_info(tmp_path, "fallback", "License: MIT", record)
    _dist_info(tmp_path, "nolicence", "Summary: none declared")
    packages = [
        # vendoring's fallback when the installer named no wheel: the RECORD's digest, not a wheel hash
        {"name": "fallback", "version": "1.0", "wheel": "fallback-1.0-py3-none-any.whl",
         "sha256": hashlib.sha256(record).hexdigest()},
        {"name": "nolicence", "version": "1.0", "wheel": "", "sha256": "f" * 64},
        {"name": "Not_Here", "version": "2.0", "wheel": "not_here-2.0-py3-none-any.whl", "sha256": "e" * 64},
    ]  # fmt: skip
    sbom = sbom_dict(tmp_path, _manifest(packages))
    validate(json.dumps(sbom))
    c = {x["name"]: x for x in sbom["components"]}
    assert "hashes" not in c["fallback"] and c["fallback"]["licenses"] == [{"license": {"name": "MIT"}}]
    assert "licenses" not in c["nolicence"] and c["nolicence"]["properties"] == []
    assert c["Not_Here"]["purl"] == "pkg:pypi/not-here@2.0" and "licenses" not in c["Not_Here"]


def test_an_artifact_without_packages_has_an_empty_valid_sbom(tmp_path: Path) -> None:
    write_manifest(tmp_path, _manifest([]))
    text = (tmp_path / SBOM_FILE).read_text()
    validate(text)
    assert json.loads(text)["components"] == []


def test_the_validator_does_reject_a_broken_sbom(tmp_path: Path) -> None:
    """The schema check has teeth: a component without a name is refused."""
    sbom = sbom_dict(tmp_path, _manifest([{"name": "a", "version": "1", "wheel": "", "sha256": "e" * 64}]))
    del sbom["components"][0]["name"]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(sbom)) is not None
