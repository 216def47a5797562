"""The next channel index: the previous one (verified) with the published entries merged in, signed."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace

from ..errors import BadInputError
from ..runtime.device.channel import PAYLOAD_TYPE, Blob, Entry, Index, open_index
from ..runtime.trust.public_keys import PublicKey
from ..runtime.trust.statement import version_key
from ..signing.dsse import sign_envelope
from ..signing.keys import Signer


class ChannelConflictError(BadInputError):
    """A version already on the channel was given again with different content (exit 2)."""


def read_previous(envelope_bytes: bytes | None, keys: Sequence[PublicKey]) -> Index:
    """The channel's current index, verified with the publisher's own key; empty for a new channel.

    An index this key cannot verify is refused (``VerificationError``, exit 4): publishing
    over it would silently drop whatever another publisher put there.
    """
    if envelope_bytes is None:
        return Index(sequence=0, entries=())
    return open_index(envelope_bytes, keys)


def merge(previous: Index, entries: Sequence[Entry]) -> Index:
    """``previous`` with ``entries`` added or updated (same name, target and version: the rollout
    percentage and URLs change, the content may not); the sequence one higher."""
    by_key = {(e.name, e.target, e.version): e for e in previous.entries}
    for entry in entries:
        key = (entry.name, entry.target, entry.version)
        old = by_key.get(key)
        if old is not None and (old.bundle.sha256, old.attestation.sha256) != (
            entry.bundle.sha256,
            entry.attestation.sha256,
        ):
            raise ChannelConflictError(
                f"{entry.name} {entry.version} for {entry.target} is already on the channel with other "
                "content; publish it under a new version"
            )
        by_key[key] = entry
    ordered = sorted(by_key.values(), key=lambda e: (e.name, e.target, version_key(e.version)))
    return Index(sequence=previous.sequence + 1, entries=tuple(ordered))


def with_urls(index: Index, url_for: Callable[[str], str | None], blob_key: Callable[[str], str]) -> Index:
    """Every blob and bundle given a fetch URL (presigned, for S3 channels), refreshed on each publish."""

    def blob(b: Blob, key: str) -> Blob:
        return replace(b, url=url_for(key))

    return replace(
        index,
        entries=tuple(
            replace(
                e,
                bundle=blob(e.bundle, e.bundle.path),
                attestation=blob(e.attestation, blob_key(e.attestation.sha256)),
                files=tuple(blob(f, blob_key(f.sha256)) for f in e.files),
            )
            for e in index.entries
        ),
    )


def sign_index(index: Index, signer: Signer) -> bytes:
    payload = json.dumps(index.to_json(), sort_keys=True, separators=(",", ":")).encode()
    envelope = sign_envelope(payload, PAYLOAD_TYPE, signer)
    return json.dumps(envelope, indent=2).encode() + b"\n"
