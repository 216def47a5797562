"""DSSE (Dead Simple Signing Envelope), the verifying half: PAE and ``open_envelope``.

Signatures cover the Pre-Authentication Encoding of the payload type and the payload,
never the JSON around them. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import BadSignatureError, MalformedAttestationError
from .public_keys import PublicKey

_ENVELOPE_FIELDS = {"payload", "payloadType", "signatures"}


def pae(payload_type: str, payload: bytes) -> bytes:
    """``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, lengths as ASCII decimal byte counts."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


@dataclass(frozen=True)
class VerifiedPayload:
    """A payload whose signature by ``keyid`` verified."""

    payload: bytes
    payload_type: str
    keyid: str


def _b64decode(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedAttestationError(f"envelope {what} is not a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise MalformedAttestationError(f"envelope {what} is not valid base64") from e


def parse_envelope(envelope: Mapping[str, Any]) -> tuple[str, bytes, list[tuple[str, bytes]]]:
    """The envelope's payload type, payload and ``(keyid, signature)`` pairs, shape-checked only."""
    if not isinstance(envelope, Mapping):
        raise MalformedAttestationError("envelope is not a JSON object")
    fields = set(envelope)
    if fields != _ENVELOPE_FIELDS:
        missing = sorted(_ENVELOPE_FIELDS - fields)
        extra = sorted(fields - _ENVELOPE_FIELDS)
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(extra)}" if extra else "",
            )
            if part
        )
        raise MalformedAttestationError(f"envelope fields are wrong ({detail})")
    payload_type = envelope["payloadType"]
    if not isinstance(payload_type, str) or not payload_type:
        raise MalformedAttestationError("envelope payloadType is not a non-empty string")
    payload = _b64decode(envelope["payload"], "payload")
    signatures = envelope["signatures"]
    if not isinstance(signatures, list):
        raise MalformedAttestationError("envelope signatures is not a list")
    parsed: list[tuple[str, bytes]] = []
    for i, entry in enumerate(signatures):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("keyid"), str):
            raise MalformedAttestationError(f"envelope signature {i} has no keyid string")
        parsed.append((entry["keyid"], _b64decode(entry.get("sig"), f"signature {i}")))
    return payload_type, payload, parsed


def open_envelope(envelope: Mapping[str, Any], keys: Sequence[PublicKey]) -> VerifiedPayload:
    """Check the envelope's shape, then its signatures; return the payload only once one verifies.

    A signature counts when its ``keyid`` names a trusted key and that key verifies it
    over the PAE. Raises ``MalformedAttestationError`` (shape) or ``BadSignatureError``
    (no signature by a trusted key, or the trusted key's signature does not verify).
    """
    payload_type, payload, parsed = parse_envelope(envelope)
    if not keys:
        raise BadSignatureError("no trusted keys were given, so no signature can be accepted")
    if not parsed:
        raise BadSignatureError("envelope carries no signature")
    trusted = {k.keyid: k for k in keys}
    message = pae(payload_type, payload)
    failures: list[str] = []
    for keyid, sig in parsed:
        key = trusted.get(keyid)
        if key is None:
            continue
        try:
            key.verify(sig, message)
        except BadSignatureError:
            failures.append(keyid)
            continue
        return VerifiedPayload(payload=payload, payload_type=payload_type, keyid=keyid)
    if failures:
        raise BadSignatureError(f"signature by trusted key {failures[0]} does not verify")
    seen = ", ".join(sorted({keyid for keyid, _ in parsed}))
    raise BadSignatureError(f"no signature by a trusted key (signed by: {seen})")


def verify_envelope(envelope: Mapping[str, Any], keys: Sequence[PublicKey]) -> bytes:
    """The envelope's payload, returned only after a signature by a trusted key verifies."""
    return open_envelope(envelope, keys).payload
