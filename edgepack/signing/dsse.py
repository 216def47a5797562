"""DSSE (Dead Simple Signing Envelope), as in github.com/secure-systems-lab/dsse.

Signatures cover the Pre-Authentication Encoding (PAE) of the payload type and the
payload, never the JSON around them. Signing lives here; the verifying half (``pae``,
``open_envelope``) is the runtime's, which devices ship. Pure: no I/O (a KMS signer does its own).
"""

from __future__ import annotations

import base64
from typing import Any

from ..runtime.trust.dsse import VerifiedPayload, open_envelope, pae, parse_envelope, verify_envelope
from .keys import Signer


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sign_envelope(payload: bytes, payload_type: str, signer: Signer) -> dict[str, Any]:
    """A DSSE envelope over ``payload`` with one signature by ``signer``."""
    signature = signer.sign(pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": _b64(payload),
        "signatures": [{"keyid": signer.keyid, "sig": _b64(signature)}],
    }


__all__ = ["VerifiedPayload", "open_envelope", "pae", "parse_envelope", "sign_envelope", "verify_envelope"]
