"""The signed channel index: what a channel offers, and how a device comes to trust it.

A channel (a directory, an HTTP(S) base URL or an S3 prefix) holds::

    index.dsse.json           DSSE envelope over the index below, written last
    blobs/sha256/<hex>        every file of every bundle, by content
    bundles/<bundle name>     the bundles themselves

The index payload (``application/vnd.edgepack.channel+json``)::

    {"schema": "edgepack.channel/v1", "sequence": 7, "entries": [
      {"name", "version", "target", "rollout_percent",
       "bundle": {"path", "sha256", "size"[, "url"]},
       "attestation": {"sha256", "size"[, "url"]},
       "files": [{"path", "sha256", "size", "mode"[, "url"]}]}]}

``url`` fields (presigned S3 URLs) say where a blob can be fetched when the channel's own
location cannot be read directly. ``sequence`` grows with every publish; a device keeps
the highest it accepted and refuses a lower one, so an old index cannot be replayed to
hold a device back (freeze) or to offer it something withdrawn.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..trust import statement
from ..trust.dsse import open_envelope
from ..trust.errors import MalformedAttestationError, RollbackError, VerificationError
from ..trust.public_keys import PublicKey
from .download import check_location, fetch_bytes
from .fsutil import atomic_write

SCHEMA = "edgepack.channel/v1"
PAYLOAD_TYPE = "application/vnd.edgepack.channel+json"
INDEX_FILE = "index.dsse.json"
BLOB_DIR = "blobs/sha256"
BUNDLE_DIR = "bundles"
MAX_INDEX_BYTES = 16 << 20
MODES = (0o644, 0o755)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^\d+(\.\d+)*$")


@dataclass(frozen=True)
class Blob:
    """One file of a release, by content."""

    sha256: str
    size: int
    path: str = ""
    mode: int = 0o644
    url: str | None = None


@dataclass(frozen=True)
class Entry:
    """One release on the channel: a bundle of one project version for one target."""

    name: str
    version: str
    target: str
    rollout_percent: float
    bundle: Blob
    attestation: Blob
    files: tuple[Blob, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "target": self.target,
            "rollout_percent": self.rollout_percent,
            "bundle": _blob_json(self.bundle, path=True),
            "attestation": _blob_json(self.attestation),
            "files": [_blob_json(f, path=True, mode=True) for f in self.files],
        }


@dataclass(frozen=True)
class Index:
    sequence: int
    entries: tuple[Entry, ...]

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "sequence": self.sequence, "entries": [e.to_json() for e in self.entries]}


def _blob_json(blob: Blob, *, path: bool = False, mode: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if path:
        out["path"] = blob.path
    out["sha256"] = blob.sha256
    out["size"] = blob.size
    if mode:
        out["mode"] = f"{blob.mode:04o}"
    if blob.url is not None:
        out["url"] = blob.url
    return out


# -- parsing ---------------------------------------------------------------------------


def strict_json(data: bytes, what: str) -> Any:
    try:
        return statement.strict_json(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise MalformedAttestationError(f"{what}: not JSON ({e})") from e


def _field(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MalformedAttestationError(f"{where}: {key} is missing or of the wrong type")
    return value


def _blob(obj: Any, where: str, *, path: bool = False, mode: bool = False) -> Blob:
    if not isinstance(obj, Mapping):
        raise MalformedAttestationError(f"{where}: not an object")
    sha = _field(obj, "sha256", str, where)
    if not _SHA256.match(sha):
        raise MalformedAttestationError(f"{where}: sha256 is not a lowercase hex digest")
    size = _field(obj, "size", int, where)
    if size < 0:
        raise MalformedAttestationError(f"{where}: size is negative")
    name = ""
    if path:
        name = _field(obj, "path", str, where)
        parts = name.split("/")
        if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in name:
            raise MalformedAttestationError(f"{where}: path {name!r} is not a safe relative path")
    file_mode = 0o644
    if mode:
        raw = _field(obj, "mode", str, where)
        file_mode = int(raw, 8) if re.fullmatch(r"0[0-7]{3}", raw) else -1
        if file_mode not in MODES:
            raise MalformedAttestationError(f"{where}: mode {raw!r} is not 0644 or 0755")
    url = obj.get("url")
    if url is not None and not isinstance(url, str):
        raise MalformedAttestationError(f"{where}: url is not a string")
    return Blob(sha256=sha, size=size, path=name, mode=file_mode, url=url)


def _entry(obj: Any, i: int) -> Entry:
    where = f"{INDEX_FILE}: entry {i}"
    if not isinstance(obj, Mapping):
        raise MalformedAttestationError(f"{where}: not an object")
    version = _field(obj, "version", str, where)
    if not _VERSION.match(version):
        raise MalformedAttestationError(f"{where}: version {version!r} is not numeric")
    percent = _field(obj, "rollout_percent", (int, float), where)
    if not 0 <= percent <= 100:
        raise MalformedAttestationError(f"{where}: rollout_percent {percent} is outside 0-100")
    raw_files = _field(obj, "files", list, where)
    files = tuple(_blob(f, f"{where} file {j}", path=True, mode=True) for j, f in enumerate(raw_files))
    return Entry(
        name=_field(obj, "name", str, where),
        version=version,
        target=_field(obj, "target", str, where),
        rollout_percent=percent,
        bundle=_blob(obj.get("bundle"), f"{where} bundle", path=True),
        attestation=_blob(obj.get("attestation"), f"{where} attestation"),
        files=files,
    )


def parse_index(payload: bytes) -> Index:
    """The index a verified payload holds; ``MalformedAttestationError`` when its shape is wrong."""
    doc = strict_json(payload, INDEX_FILE)
    if not isinstance(doc, Mapping) or doc.get("schema") != SCHEMA:
        raise MalformedAttestationError(f"{INDEX_FILE}: schema is not {SCHEMA}")
    sequence = _field(doc, "sequence", int, INDEX_FILE)
    if sequence < 0:
        raise MalformedAttestationError(f"{INDEX_FILE}: sequence is negative")
    entries = tuple(_entry(e, i) for i, e in enumerate(_field(doc, "entries", list, INDEX_FILE)))
    seen = set()
    for e in entries:
        key = (e.name, e.target, e.version)
        if key in seen:
            raise MalformedAttestationError(f"{INDEX_FILE}: {e.name} {e.version} for {e.target} listed twice")
        seen.add(key)
    return Index(sequence=sequence, entries=entries)


def open_index(envelope_bytes: bytes, keys: Sequence[PublicKey]) -> Index:
    """The index, returned only once a trusted key's signature over it verifies."""
    envelope = strict_json(envelope_bytes, INDEX_FILE)
    try:
        opened = open_envelope(envelope, keys)
    except VerificationError as e:
        raise type(e)(f"{INDEX_FILE}: {e.message}") from e
    if opened.payload_type != PAYLOAD_TYPE:
        raise MalformedAttestationError(
            f"{INDEX_FILE}: payload type {opened.payload_type!r} is not {PAYLOAD_TYPE}"
        )
    return parse_index(opened.payload)


# -- where things are -------------------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    """A channel location: where its index and its blobs are."""

    index_location: str
    base: str

    @classmethod
    def parse(cls, location: str) -> Channel:
        """A directory, ``file://``, ``s3://bucket/prefix`` or ``http(s)://`` base URL; an HTTP(S)
        URL whose path ends in ``.json`` names the index itself (a presigned index URL)."""
        check_location(location)
        parts = urllib.parse.urlsplit(location)
        if parts.scheme in ("http", "https") and parts.path.endswith(".json"):
            base_path = parts.path.rsplit("/", 1)[0]
            base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, base_path, "", ""))
            return cls(index_location=location, base=base)
        base = location.rstrip("/")
        return cls(index_location=f"{base}/{INDEX_FILE}", base=base)

    def blob_location(self, blob: Blob) -> str:
        return blob.url or f"{self.base}/{BLOB_DIR}/{blob.sha256}"

    def bundle_location(self, entry: Entry) -> str:
        return entry.bundle.url or f"{self.base}/{entry.bundle.path}"

    @property
    def identity(self) -> str:
        """The index location without a query string: presigned URLs change, the channel does not."""
        parts = urllib.parse.urlsplit(self.index_location)
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


# -- freeze and replay protection -------------------------------------------------------


def _read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise MalformedAttestationError(f"{path}: unreadable channel state ({e})") from e
    return data if isinstance(data, dict) else {}


def accept_sequence(state_file: Path, channel: Channel, index: Index) -> None:
    """Record ``index.sequence`` for the channel, refusing (``RollbackError``) one lower than
    the highest accepted before."""
    state = _read_state(state_file)
    raw = state.get("sequences")
    sequences: dict[str, Any] = raw if isinstance(raw, dict) else {}
    seen = sequences.get(channel.identity, -1)
    if isinstance(seen, int) and index.sequence < seen:
        raise RollbackError(
            f"{INDEX_FILE}: sequence {index.sequence} is lower than {seen}, already seen on this channel "
            "(a replayed or frozen index)",
            where=channel.identity,
        )
    if index.sequence != seen:
        new_state = {**state, "sequences": {**sequences, channel.identity: index.sequence}}
        atomic_write(state_file, json.dumps(new_state, sort_keys=True).encode())


def fetch_index(channel: Channel, keys: Sequence[PublicKey], state_file: Path | None = None) -> Index:
    """Fetch the channel's index, verify its signature, and (with ``state_file``) its sequence."""
    index = open_index(fetch_bytes(channel.index_location, MAX_INDEX_BYTES), keys)
    if state_file is not None:
        accept_sequence(state_file, channel, index)
    return index
