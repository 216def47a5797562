"""What the passes make of a converter's exception: one line, and the operator when it names one.

Shared by the ONNX and OpenVINO passes: converters (tf2onnx, ONNX Runtime's quantizer,
OpenVINO, NNCF) raise pages of text; a build error is one line naming the target.
"""

from __future__ import annotations

import re

from ..errors import EdgepackError, PassError, UnsupportedOpError

_NOISE_RE = re.compile(
    r"^(File \"|in user code:|Check '.*' failed at|Exception from src/|FrontEnd API failed|Traceback"
    r"|Summary:$)"
)


def first_line(e: BaseException, limit: int = 300) -> str:
    """A converter's error cut to the one line that says what is wrong.

    TensorFlow puts the cause last, after "in user code:" and a stack; OpenVINO puts
    source locations first. Skip those, keep the first line that is a message.
    """
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if lines and lines[0].startswith("in user code:"):
        lines = lines[-1:]
    lines = [ln for ln in lines if not _NOISE_RE.match(ln)]
    text = " ".join(lines[0].split()) if lines else type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def converter_error(
    e: BaseException, op: str | None, target: str, step: str, *, failed: str | None = None
) -> EdgepackError:
    """The error to raise (``from e``) when ``step`` of a pass for ``target`` failed with ``e``.

    ``op`` is the operator the caller read from the converter's message, if any: then an
    ``UnsupportedOpError`` naming it, with ``step`` as its detail. Otherwise a ``PassError``
    "<failed, default step> failed: <first_line(e)>".
    """
    if op:
        return UnsupportedOpError(op, target, step)
    return PassError(f"{failed or step} failed: {first_line(e)}", where=target)
