"""Helpers for signing tests: a small artifact tree, and ways to tamper with it and repackage it."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgepack.packaging.archive import write_zip
from edgepack.runtime.manifest import ATTESTATION_FILE, MANIFEST_FILE
from edgepack.signing.attestation import PAYLOAD_TYPE, Provenance, canonical_json, write_envelope
from edgepack.signing.dsse import sign_envelope
from edgepack.signing.keys import Signer

MANIFEST: dict[str, Any] = {
    "schema": "edgepack.manifest/v1",
    "name": "digits",
    "version": "1.0.0",
    "target": {"name": "lambda-x86_64", "kind": "lambda"},
    "model": {"file": "model/model.tflite", "format": "tflite"},
}

# path -> content; covers nested dirs, a shared object, a dist-info and a non-ASCII name.
FILES: dict[str, bytes] = {
    MANIFEST_FILE: json.dumps(MANIFEST, indent=2).encode(),
    "handler.py": b"from edgepack_runtime.lambda_adapter import create_handler\n",
    "model/model.tflite": b"TFL3" + bytes(range(256)) * 8,
    "edgepack_runtime/__init__.py": b'"""runtime"""\n',
    "numpy/_core/_umath.cpython-312-x86_64-linux-gnu.so": b"\x7fELF" + b"\x00" * 300,
    "numpy-2.4.6.dist-info/RECORD": b"numpy/__init__.py,sha256=abc,10\n",
    "data/caf\u00e9 labels.txt": "z\u00e9ro\nun\n".encode(),
}


def make_tree(root: Path) -> Path:
    for name, data in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def sample_provenance(**overrides: Any) -> Provenance:
    fields: dict[str, Any] = {
        "project": "digits",
        "version": "1.0.0",
        "target": "lambda-x86_64",
        "model_name": "digits.keras",
        "model_sha256": "a" * 64,
        "config_sha256": "b" * 64,
        "data_sha256": {"calibration": "c" * 64, "validation": "d" * 64},
        "packages": [
            {
                "name": "numpy",
                "version": "2.4.6",
                "wheel": "numpy-2.4.6-cp312-manylinux.whl",
                "sha256": "e" * 64,
            }
        ],
        "edgepack_version": "0.1.0",
        "epoch": 1700000000,
        "tool_versions": {"tensorflow": "2.21.0"},
    }
    fields.update(overrides)
    return Provenance(**fields)


def read_statement(root: Path) -> dict[str, Any]:
    envelope = json.loads((root / ATTESTATION_FILE).read_text())
    return dict(json.loads(base64.b64decode(envelope["payload"])))


def resign(
    root: Path,
    signer: Signer,
    mutate: Callable[[dict[str, Any]], None] | None = None,
    *,
    keyid: str | None = None,
    payload_type: str = PAYLOAD_TYPE,
) -> None:
    """Replace the attestation with one signed by ``signer`` over a (mutated) statement."""
    statement = read_statement(root)
    if mutate is not None:
        mutate(statement)
    envelope = sign_envelope(canonical_json(statement), payload_type, signer)
    if keyid is not None:
        envelope["signatures"][0]["keyid"] = keyid
    write_envelope(root, envelope)


def write_tar(src: Path, dest: Path) -> Path:
    """A gzip tar of ``src`` (files only, the attestation first, then sorted), as an OTA bundle is."""
    files = sorted(
        (p for p in src.rglob("*") if p.is_file()),
        key=lambda p: (p.relative_to(src).as_posix() != ATTESTATION_FILE, p),
    )
    with tarfile.open(dest, "w:gz") as tf:
        for path in files:
            tf.add(path, arcname=path.relative_to(src).as_posix())
    return dest


def materialize(root: Path, form: str) -> Path:
    """The artifact as a directory, a zip or a tar bundle (written beside ``root``)."""
    if form == "dir":
        return root
    if form == "zip":
        dest = root.parent / "artifact.zip"
        write_zip(root, dest)
        return dest
    if form == "tar":
        return write_tar(root, root.parent / "artifact.bundle.tar.gz")
    raise AssertionError(form)


def tar_bytes(members: list[tarfile.TarInfo], data: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for info in members:
            tf.addfile(info, io.BytesIO(data[info.name]) if info.name in data else None)
    return raw.getvalue()
