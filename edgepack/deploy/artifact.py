"""The artifact a deploy sends, verified before anything else happens.

``open_verified`` hashes the zip, then verifies its signature and every file offline
with the trusted keys (the runtime's ``verify_and_extract``, verifying only): a tampered
or unsigned zip raises a ``VerificationError`` (exit 4) before any request is made. The bytes later sent are
re-hashed against the digest taken here, so a file swapped after verification is
refused too. ``open_layer`` does the same for the layer zip that a layer-split function's
manifest names (``runtime.layer``: file beside the function zip, its sha256, a name).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import BadInputError, DigestMismatchError, UnsafePathError
from ..runtime.hashing import sha256_file
from ..runtime.trust.public_keys import PublicKey
from ..runtime.trust.reader import verify_and_extract


@dataclass(frozen=True)
class LayerRef:
    """``runtime.layer`` of a layer-split function's manifest."""

    file: str  # the layer zip's file name, beside the function zip
    sha256: str  # hex sha256 of the layer zip's bytes
    name: str  # suggested Lambda layer name


@dataclass(frozen=True)
class VerifiedZip:
    """A Lambda zip (function or layer) whose signature and files verified."""

    path: Path
    manifest: dict[str, Any]
    sha256: str  # hex, of the zip file's bytes
    size: int
    unzipped_size: int
    keyid: str
    subjects: Mapping[str, str] = field(default_factory=dict)  # verified: path -> sha256 hex

    @property
    def code_sha256(self) -> str:
        """The zip's digest as Lambda reports it (``CodeSha256``: base64 of the sha256)."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", ""))

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", ""))

    @property
    def target(self) -> Mapping[str, Any]:
        target = self.manifest.get("target")
        return target if isinstance(target, dict) else {}

    def read_bytes(self) -> bytes:
        """The zip's bytes, refused unless they are still the ones verified."""
        data = self.path.read_bytes()
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise DigestMismatchError(f"{self.path}: the file changed after it was verified")
        return data


def file_sha256(path: Path) -> str:
    return sha256_file(path)


def open_verified(path: Path, keys: Sequence[PublicKey]) -> VerifiedZip:
    """Verify ``path`` against ``keys`` (raises ``VerificationError``) and read its manifest."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError("not a file: a Lambda deploy takes the built zip", where=str(path))
    if not keys:
        raise BadInputError("no trusted key: pass --key with the signer's public key", where=str(path))
    sha = file_sha256(path)  # before verifying: the bytes sent later must hash to this
    verified = verify_and_extract(path, None, keys, kind="zip")
    if file_sha256(path) != sha:
        raise DigestMismatchError(f"{path}: the file changed while it was verified")
    unzipped = sum(verified.sizes.values())
    return VerifiedZip(
        path, verified.manifest, sha, path.stat().st_size, unzipped, verified.keyid, dict(verified.subjects)
    )


def layer_content_sha256(layer: VerifiedZip) -> str | None:
    """The digest of a layer's ``python/`` tree (what reuse compares: a version bump changes the
    layer's manifest and zip, not its packages), as its signed manifest records it, recomputed
    from the verified per-file digests (``cache.sha256_tree``'s scheme); None when unrecorded."""
    section = (layer.manifest.get("runtime") or {}).get("layer")
    claimed = section.get("content_sha256") if isinstance(section, dict) else None
    if not isinstance(claimed, str):
        return None
    base = str(section.get("path") or "python") if isinstance(section, dict) else "python"
    files = sorted(
        PurePosixPath(name).relative_to(base)
        for name in layer.subjects
        if name.startswith(f"{base}/") and "__pycache__" not in PurePosixPath(name).parts
    )
    digest = hashlib.sha256()
    for rel in files:
        digest.update(rel.as_posix().encode() + b"\0")
        digest.update(layer.subjects[f"{base}/{rel.as_posix()}"].encode() + b"\0")
    if digest.hexdigest() != claimed:
        raise DigestMismatchError(
            f"{layer.path}: runtime.layer.content_sha256 {claimed} does not match its {base}/ files"
        )
    return claimed


def layer_ref(manifest: Mapping[str, Any], where: str) -> LayerRef | None:
    """``runtime.layer`` when the function was built with a layer split, else None."""
    runtime = manifest.get("runtime")
    section = runtime.get("layer") if isinstance(runtime, dict) else None
    if section is None:
        return None
    if not isinstance(section, dict) or not all(
        isinstance(section.get(k), str) for k in ("file", "sha256", "name")
    ):
        raise BadInputError("runtime.layer must name file, sha256 and name", where=where)
    return LayerRef(section["file"], section["sha256"].lower(), section["name"])


def open_layer(function: VerifiedZip, keys: Sequence[PublicKey]) -> tuple[LayerRef, VerifiedZip] | None:
    """The layer zip a layer-split function names, checked against the digest its signed
    manifest records and verified on its own; None for a function without a layer split."""
    ref = layer_ref(function.manifest, f"{function.path}!edgepack.json")
    if ref is None:
        return None
    if Path(ref.file).name != ref.file or ref.file in ("", ".", ".."):
        raise UnsafePathError(f"runtime.layer.file {ref.file!r} is not a file name beside the function zip")
    path = function.path.parent / ref.file
    if not path.is_file():
        raise BadInputError(
            f"the function was built with a layer split, and its layer zip {ref.file} is missing "
            "beside it (or pass --layer ARN to attach a published one)",
            where=str(function.path),
        )
    layer = open_verified(path, keys)
    if layer.sha256 != ref.sha256:
        raise DigestMismatchError(
            f"{path}: sha256 {layer.sha256} is not the {ref.sha256} that the function's manifest records"
        )
    return ref, layer
