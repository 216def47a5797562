"""Command line inside a device bundle: ``python predict.py health`` / ``predict [FILE]``
/ ``serve [...]`` (the local Open Inference Protocol server, telemetry spooled: see
``device/serve.py``) / ``telemetry-drain [...]``.

Reads a request (direct or Open Inference Protocol JSON) from FILE or stdin and prints
the response; exit 0 ok, 1 failure, 2 bad request.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .dataplane import DataPlane, parse_json
from .errors import BadRequestError, InferenceError
from .health import health_check
from .hooks import load_hooks
from .manifest import Manifest
from .predictor import Predictor

USAGE = (
    "usage: predict.py health | predict.py predict [REQUEST.json | -] | predict.py serve [--spool DIR]"
    " [--mqtt HOST:PORT] [--port P] ... | predict.py telemetry-drain --spool DIR --mqtt HOST:PORT"
)


def _predict(root: Path, source: str) -> int:
    manifest = Manifest.load(root)
    plane = DataPlane(
        Predictor.from_artifact(root),
        model_name=manifest.name,
        model_version=manifest.version,
        hooks=load_hooks(manifest.hooks, root),
    )
    try:
        body = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as e:
        print(json.dumps({"error": {"code": "bad_request", "message": f"cannot read the request: {e}"}}))
        return 2
    try:
        payload = parse_json(body)
    except BadRequestError as e:
        print(json.dumps({"error": e.to_dict()}))
        return 2
    try:
        print(json.dumps(plane.infer(payload)))
    except BadRequestError as e:
        print(json.dumps({"error": e.to_dict()}))
        return 2
    except InferenceError as e:
        print(json.dumps({"error": e.to_dict()}))
        return 1
    return 0


def main(root: Path, argv: list[str]) -> int:
    if argv[:1] == ["health"]:
        report = health_check(root)
        print(json.dumps({"ok": report.ok, "max_abs_error": report.max_abs_error, "reason": report.reason}))
        return 0 if report.ok else 1
    if argv[:1] == ["predict"] and len(argv) <= 2:
        return _predict(root, argv[1] if len(argv) == 2 else "-")
    if argv[:1] == ["serve"]:
        from .device.serve import serve_main

        return serve_main(root, argv[1:])
    if argv[:1] == ["telemetry-drain"]:
        from .device.serve import drain_main

        return drain_main(root, argv[1:])
    print(USAGE, file=sys.stderr)
    return 2
