"""Bearer tokens per model, stored hashed (DESIGN.md "Access").

The tokens file is JSON: model name -> list of sha256 hex digests of the tokens that may
call it; the key ``"*"`` applies to every model. Nothing in it is a secret. A request
without a usable ``Authorization: Bearer <token>`` header is refused with 401, one whose
token is not accepted for the model with 403. Tokens are compared by digest with
``hmac.compare_digest`` against every accepted digest, so the answer takes the same time
whichever digest matched.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from pathlib import Path

from .errors import ModelLoadError
from .http_wire import HTTPError

WILDCARD = "*"
_DIGEST = re.compile(r"[0-9a-f]{64}\Z")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="edgepack"'}


def token_digest(token: str) -> str:
    """What the tokens file stores for ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class BearerAuth:
    """Accepted token digests per model."""

    def __init__(self, digests: Mapping[str, list[str]]) -> None:
        self._digests = {name: tuple(d.encode("ascii") for d in values) for name, values in digests.items()}

    @classmethod
    def load(cls, path: Path) -> BearerAuth:
        """Read and check the tokens file; ``ModelLoadError`` naming what is wrong."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"auth tokens file {path}: cannot read JSON: {e}") from e
        if not isinstance(data, dict):
            raise ModelLoadError(f"auth tokens file {path}: expected an object of model name -> digests")
        for name, values in data.items():
            if not isinstance(values, list) or not all(
                isinstance(v, str) and _DIGEST.match(v) for v in values
            ):
                raise ModelLoadError(
                    f"auth tokens file {path}: {name!r} must list sha256 hex digests (64 lower-case hex)"
                )
        return cls(data)

    def models_without_tokens(self, names: list[str]) -> list[str]:
        """Served models no token can call (worth a warning at startup)."""
        if self._digests.get(WILDCARD):
            return []
        return [n for n in names if not self._digests.get(n)]

    def check(self, model: str, authorization: str | None) -> None:
        """Return if ``authorization`` carries a token accepted for ``model``; else ``HTTPError``."""
        if authorization is None:
            raise HTTPError(401, "unauthorized", "missing bearer token", headers=_CHALLENGE)
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise HTTPError(
                401, "unauthorized", "malformed Authorization header; send 'Bearer <token>'",
                headers=_CHALLENGE,
            )  # fmt: skip
        digest = token_digest(token).encode("ascii")
        accepted = self._digests.get(model, ()) + self._digests.get(WILDCARD, ())
        ok = False
        for candidate in accepted:
            ok |= hmac.compare_digest(digest, candidate)
        if not ok:
            raise HTTPError(403, "forbidden", f"token not accepted for model {model!r}")
