"""Helpers for deploy tests: re-signed variants of a built artifact, and injected faults."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgepack.packaging.archive import write_zip
from edgepack.runtime.trust.reader import verify_and_extract
from edgepack.signing.attestation import Provenance, attest_tree
from edgepack.signing.keys import Ed25519FileSigner

EPOCH = 1_700_000_000


def resign(src: Path, dest: Path, key: Path, change: Callable[[Path], None]) -> Path:
    """``src`` unpacked, changed by ``change(root)``, attested again with ``key`` and zipped to ``dest``."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        verify_and_extract(src, root, [], unverified=True)
        change(root)
        (root / "attestation.dsse.json").unlink()
        manifest = json.loads((root / "edgepack.json").read_text())
        provenance = Provenance(
            project=manifest["name"],
            version=manifest["version"],
            target=manifest["target"]["name"],
            model_name="digits.keras",
            model_sha256="a" * 64,
            config_sha256="b" * 64,
            epoch=EPOCH,
        )
        attest_tree(root, Ed25519FileSigner.from_file(key), provenance)
        write_zip(root, dest, EPOCH)
    return dest


def edit_manifest(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / "edgepack.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    return apply


def aws_error(status: int, code: str, message: str) -> Callable[..., Any]:
    """A ``before-send`` handler that answers like AWS's REST-JSON services (Lambda) would."""
    from botocore.awsrequest import AWSResponse

    class _Raw:
        def __init__(self, body: bytes) -> None:
            self._body = body

        def stream(self, **_: Any) -> Any:
            yield self._body

    def answer(request: Any, **_: Any) -> Any:
        body = json.dumps({"__type": code, "message": message, "Message": message}).encode()
        headers = {"x-amzn-errortype": code, "content-type": "application/json"}
        return AWSResponse(request.url, status, headers, _Raw(body))

    return answer


def times(n: int, handler: Callable[..., Any], operation: str | None = None) -> Callable[..., Any]:
    """``handler`` for the first ``n`` matching requests, then pass them to the server."""
    left = [n]

    def maybe(request: Any, **kwargs: Any) -> Any:
        name = kwargs.get("event_name", "")
        if operation is not None and not name.endswith(f".{operation}"):
            return None
        if left[0] <= 0:
            return None
        left[0] -= 1
        return handler(request=request, **kwargs)

    return maybe
