"""Telemetry uplink over HTTP(S): each batch is one ``POST`` of ``{"events": [...]}``
(JSON); any 2xx acknowledges the whole batch, anything else leaves it in the spool."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .uplink import UplinkError


@dataclass(frozen=True)
class HttpSettings:
    url: str
    token: str | None = None  # sent as ``Authorization: Bearer``
    tls_ca: Path | None = None  # CA bundle for https (default: the system's)
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"telemetry URL {self.url!r} must start with http:// or https://")


class HttpUplink:
    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        self._context = (
            ssl.create_default_context(cafile=str(settings.tls_ca)) if settings.tls_ca is not None else None
        )

    def send(self, events: list[dict[str, Any]]) -> None:
        body = json.dumps({"events": events}, separators=(",", ":"), default=str).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        request = urllib.request.Request(self.settings.url, data=body, headers=headers, method="POST")
        try:
            timeout = self.settings.timeout_s
            with urllib.request.urlopen(request, timeout=timeout, context=self._context) as answer:
                status = answer.status
        except urllib.error.HTTPError as e:
            raise UplinkError(f"telemetry endpoint answered {e.code}") from e
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise UplinkError(f"cannot reach the telemetry endpoint: {e}") from e
        if not 200 <= status < 300:
            raise UplinkError(f"telemetry endpoint answered {status}")
