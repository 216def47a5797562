"""Errors raised while serving. Adapters map ``status`` to their transport.

Every message is bounded, because adapters send it back to the caller and a request can
carry anything (a 10 MB input name, a 5,000-digit integer): ``quote`` clips the
user-supplied values a message names, and ``InferenceError`` caps the whole message, so
an error answer stays a few hundred bytes whatever the request held.
"""

from __future__ import annotations

import reprlib

MAX_MESSAGE_CHARS = 512  # the longest message an error carries
MAX_QUOTED_CHARS = 64  # the longest user-supplied value quoted in a message
_ELLIPSIS = "..."


def _repr_limits() -> reprlib.Repr:
    limits = reprlib.Repr()  # attributes, not keywords: Python 3.11 has no keyword form
    limits.maxlevel = 2
    limits.maxlist = limits.maxtuple = 8
    limits.maxdict = 4
    limits.maxstring = MAX_QUOTED_CHARS
    limits.maxlong = 24
    limits.maxother = MAX_QUOTED_CHARS
    return limits


_REPR = _repr_limits()


def clip(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """``text`` cut to ``limit`` characters, ending in an ellipsis when it was cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(_ELLIPSIS), 0)] + _ELLIPSIS


def quote(value: object) -> str:
    """A short ``repr`` of a user-supplied value, safe for any value a request can hold.

    Strings are clipped before they are quoted (a 10 MB name costs nothing), containers
    are shown two levels deep, and values whose ``repr`` fails (an integer over Python's
    4,300-digit limit) are named by their type.
    """
    if isinstance(value, str):
        return repr(value) if len(value) <= MAX_QUOTED_CHARS else repr(value[:MAX_QUOTED_CHARS]) + _ELLIPSIS
    try:
        text = _REPR.repr(value)
    except (ValueError, RecursionError):
        return f"<{type(value).__name__} too large to show>"
    return clip(text)


def bounded_message(message: str) -> str:
    """``message`` on one line and at most ``MAX_MESSAGE_CHARS`` characters.

    Non-ASCII characters count as 6 (JSON writes them ``\\uXXXX``, and 12 for a surrogate
    pair), so the message stays under about 1 KB once encoded as JSON.
    """
    text = " ".join(message[: 4 * MAX_MESSAGE_CHARS].split())
    text = clip(text, MAX_MESSAGE_CHARS)
    if text.isascii():
        return text
    budget = MAX_MESSAGE_CHARS * 2 - len(_ELLIPSIS)
    for end, ch in enumerate(text):
        budget -= 1 if ch.isascii() else (6 if ord(ch) <= 0xFFFF else 12)
        if budget < 0:
            return text[:end] + _ELLIPSIS
    return text


class InferenceError(Exception):
    """Base of runtime errors; ``status`` is the HTTP-style status to answer with."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        self.message = bounded_message(str(message))
        super().__init__(self.message)

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}


class BadRequestError(InferenceError):
    """The request does not fit the model (name, shape, dtype, encoding)."""

    status = 400
    code = "bad_request"


class ModelLoadError(InferenceError):
    """The model or its backend could not be loaded."""

    status = 500
    code = "model_load_failed"


class BackendUnavailableError(ModelLoadError):
    """No installed runtime package provides the backend the artifact needs."""

    code = "backend_unavailable"
