"""Crafting signed hostile artifacts: any names, modes and layouts, signed with the test key.

``Entry`` lists what goes into the archive (name, content, mode, directory or not); the
statement signs every file with the digest of its content and the mode a build would
record (0755 when any execute bit is set, else 0644), unless ``signed`` says otherwise.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signing_helpers import sample_provenance

from edgepack.runtime.manifest import ATTESTATION_FILE, MANIFEST_FILE
from edgepack.signing.attestation import PAYLOAD_TYPE, build_statement, canonical_json
from edgepack.signing.dsse import sign_envelope
from edgepack.signing.keys import Signer

LAMBDA_MANIFEST: dict[str, Any] = {
    "schema": "edgepack.manifest/v1",
    "name": "digits",
    "version": "1.0.0",
    "target": {
        "name": "lambda-x86_64",
        "kind": "lambda",
        "arch": "x86_64",
        "lambda_runtime": "python3.12",
    },
    "runtime": {"entrypoint": "handler.handler"},
}
HANDLER = b"def handler(event, context):\n    return {'ok': True}\n"


@dataclass(frozen=True)
class Entry:
    name: str
    data: bytes = b""
    mode: int = 0o644
    is_dir: bool = False


def base_entries(manifest: dict[str, Any] | None = None) -> list[Entry]:
    return [
        Entry(MANIFEST_FILE, json.dumps(manifest or LAMBDA_MANIFEST).encode()),
        Entry("handler.py", HANDLER),
        Entry("model/model.tflite", b"TFL3" + bytes(range(256))),
    ]


def envelope_for(entries: list[Entry], signer: Signer, signed: dict[str, int] | None = None) -> bytes:
    files = [e for e in entries if not e.is_dir and e.name != ATTESTATION_FILE]
    subjects = {e.name: hashlib.sha256(e.data).hexdigest() for e in files}
    modes = {e.name: 0o755 if e.mode & 0o111 else 0o644 for e in files}
    modes.update(signed or {})
    statement = build_statement(subjects, sample_provenance(), modes)
    envelope = sign_envelope(canonical_json(statement), PAYLOAD_TYPE, signer)
    return json.dumps(envelope).encode()


def zip_bytes(entries: list[Entry]) -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        for e in entries:
            info = zipfile.ZipInfo(e.name + ("/" if e.is_dir else ""), (1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = ((stat.S_IFDIR if e.is_dir else stat.S_IFREG) | e.mode) << 16
            info.compress_type = zipfile.ZIP_STORED if e.is_dir else zipfile.ZIP_DEFLATED
            zf.writestr(info, e.data)
    return raw.getvalue()


def tar_gz_bytes(entries: list[Entry]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.mode = e.mode
            if e.is_dir:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(e.data)
                tf.addfile(info, io.BytesIO(e.data))
    return gzip.compress(raw.getvalue(), mtime=0)


def signed_archive(
    path: Path,
    entries: list[Entry],
    signer: Signer,
    *,
    signed: dict[str, int] | None = None,
    sign: bool = True,
) -> Path:
    """``entries`` in the format ``path``'s name says (.zip / .tar.gz), the attestation first."""
    if sign:
        entries = [Entry(ATTESTATION_FILE, envelope_for(entries, signer, signed)), *entries]
    data = zip_bytes(entries) if path.name.endswith(".zip") else tar_gz_bytes(entries)
    path.write_bytes(data)
    return path
