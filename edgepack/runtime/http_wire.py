"""HTTP/1.1 on the wire: parse a request head, frame a response. No I/O here.

Just enough of RFC 9112 for an inference server: a request line, header fields and a
``Content-Length`` body. Chunked request bodies, obsolete line folding and header
sections past the limits are refused with a status and a one-line reason
(``HTTPError``); bare LF line endings are accepted, as RFC 9112 allows.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

MAX_HEAD_BYTES = 32 * 1024
MAX_HEADERS = 100
MAX_REASON_CHARS = 300  # error reasons are one bounded line

REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_FIELD_VALUE_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TARGET = re.compile(r"/[\x21-\x7e]*\Z")
_VERSIONS = {"HTTP/1.1": (1, 1), "HTTP/1.0": (1, 0)}


class HTTPError(Exception):
    """A request refused at the HTTP layer: status, error code and a one-line reason."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        close: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = one_line(message)
        self.close = close  # the connection cannot be reused (framing is unknown)
        self.headers = headers or {}


def one_line(text: str) -> str:
    """``text`` on one line, at most ``MAX_REASON_CHARS`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    path: tuple[str, ...]  # percent-decoded segments, empty ones dropped
    version: tuple[int, int]
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", "

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version >= (1, 1):
            return "close" not in connection
        return "keep-alive" in connection


def find_head_end(buf: bytes | bytearray) -> tuple[int, int]:
    """Where the head ends in ``buf`` (index of the blank line's LF's predecessor LF) and
    where the body starts; ``(-1, -1)`` while incomplete."""
    crlf = buf.find(b"\n\r\n")
    lf = buf.find(b"\n\n")
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, lf + 2
    if crlf >= 0:
        return crlf, crlf + 3
    return -1, -1


def parse_head(head: bytes | bytearray) -> Request:
    """The request line and header fields (without the blank line); ``HTTPError`` if malformed."""
    text = bytes(head).decode("latin-1")
    lines = text.split("\n")
    request_line = lines[0].removesuffix("\r")
    parts = request_line.split(" ")
    if len(parts) != 3:
        raise HTTPError(400, "bad_request_line", "malformed request line", close=True)
    method, target, version_text = parts
    version = _VERSIONS.get(version_text)
    if version is None:
        raise HTTPError(400, "bad_http_version", "unsupported HTTP version; use HTTP/1.1", close=True)
    if not _TOKEN.match(method):
        raise HTTPError(400, "bad_request_line", "malformed method in the request line", close=True)
    if not _TARGET.match(target):
        raise HTTPError(400, "bad_request_line", "request target must be an origin path", close=True)

    headers: dict[str, str] = {}
    if len(lines) - 1 > MAX_HEADERS:
        raise HTTPError(431, "headers_too_large", f"more than {MAX_HEADERS} header fields", close=True)
    for raw in lines[1:]:
        line = raw.removesuffix("\r")
        if not line or line[0] in " \t":
            raise HTTPError(400, "bad_header", "empty or folded header line", close=True)
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name):
            raise HTTPError(400, "bad_header", "malformed header field name", close=True)
        value = value.strip(" \t")
        if _FIELD_VALUE_BAD.search(value):
            raise HTTPError(400, "bad_header", f"control character in header {name[:40]!r}", close=True)
        key = name.lower()
        if key in headers:
            if key in ("content-length", "host", "authorization", "inference-header-content-length"):
                if headers[key] != value:
                    raise HTTPError(400, "bad_header", f"conflicting {key} headers", close=True)
                continue
            value = headers[key] + ", " + value
        headers[key] = value

    path_text = target.partition("?")[0]
    path = tuple(unquote(s, errors="replace") for s in path_text.split("/") if s)
    return Request(method=method, target=target, path=path, version=version, headers=headers)


def content_length(request: Request, max_body: int) -> int | None:
    """The declared body length (``None`` if none); ``HTTPError`` for a bad or oversize one,
    or for any ``Transfer-Encoding`` (request bodies must have a length)."""
    encoding = request.headers.get("transfer-encoding")
    if encoding is not None:
        if "chunked" in encoding.lower():
            raise HTTPError(
                411, "length_required", "chunked request bodies are not accepted; send Content-Length",
                close=True,
            )  # fmt: skip
        raise HTTPError(400, "bad_transfer_encoding", "unsupported Transfer-Encoding", close=True)
    text = request.headers.get("content-length")
    if text is None:
        return None
    if not text.isdigit() or not text.isascii() or len(text) > 19:
        raise HTTPError(400, "bad_content_length", "Content-Length must be a decimal number", close=True)
    length = int(text)
    if length > max_body:
        raise HTTPError(
            413, "body_too_large", f"request body of {length} bytes is over the limit of {max_body}",
            close=True,
        )  # fmt: skip
    return length


def response_head(status: int, headers: dict[str, str] | list[tuple[str, str]], length: int) -> bytes:
    """Status line and header fields, ``Content-Length`` included, ending in the blank line."""
    items = headers.items() if isinstance(headers, dict) else headers
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}", f"Content-Length: {length}"]
    lines.extend(f"{k}: {v}" for k, v in items)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# One encoder: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def json_bytes(body: Any) -> bytes:
    """Compact JSON (no NaN: JSON has none)."""
    return _ENCODER.encode(body).encode("utf-8")


def error_body(message: str) -> bytes:
    """``{"error": "<one line>"}``, the form KServe and Triton clients read."""
    return json_bytes({"error": one_line(message)})
