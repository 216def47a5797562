"""AWS Lambda adapter: Lambda events in, the data plane, Lambda responses out.

``create_handler(root)`` runs once per execution environment (the rendered ``handler.py``
calls it at import, during Lambda's init phase): it loads the manifest, hooks and model.
Each invocation then only adapts transport:

- event shapes: a direct invocation (``{"inputs": ...}``, direct or Open Inference
  Protocol form), API Gateway REST (v1, also ALB: ``httpMethod``), HTTP API v2 and
  Function URLs (``version: "2.0"``, ``requestContext.http``), with a JSON or base64 body;
- methods: POST infers, GET answers the model metadata, anything else is 405;
- answers: HTTP events get ``{"statusCode", "headers", "body": "<json>"}``; direct events
  get the response object itself, or ``{"statusCode": 4xx/5xx, "error": {"code", "message"}}``.
  A bad request (body, JSON, base64, name, shape, dtype) is a 400 naming what is wrong,
  in a reason of bounded size (user text in it clipped: Lambda answers at most 6 MB);
  anything unexpected is a 500 with a generic reason, logged with its traceback, and
  the function keeps serving. Bodies are parsed by the data plane's ``parse_json``, as
  every transport's are; Lambda events carry no binary tail, so the Open Inference
  Protocol's binary tensor data is refused with a reason.

Observability uses AWS Lambda Powertools when it is importable: structured JSON logs
with the Lambda context, telemetry events as log lines, and CloudWatch EMF metrics
(``ColdStart``, ``Invocations``, ``Errors``, ``InferenceLatency``) flushed on every
invocation. Without Powertools (e.g. in a container) it falls back to stdlib logging
and emits no metrics.

With SnapStart on (``function.snapstart``), init also registers a before-snapshot hook
that runs the recorded sample once (``snapstart.py``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dataplane import DataPlane, parse_json
from .errors import BadRequestError, InferenceError, clip, quote
from .hooks import load_hooks
from .manifest import Manifest
from .predictor import Predictor
from .snapstart import register_snapstart_hooks
from .telemetry import ERROR, Telemetry, TelemetryEvent

Handler = Callable[[Any, Any], dict[str, Any]]

DIRECT_EVENT = "direct"
HTTP_EVENT = "http"
JSON_HEADERS = {"Content-Type": "application/json"}
ALLOWED_METHODS = ("GET", "POST")
_LAMBDA_CONTEXT_FIELDS = ("function_name", "memory_limit_in_mb", "invoked_function_arn", "aws_request_id")


class MethodNotAllowedError(BadRequestError):
    status = 405
    code = "method_not_allowed"


# -- events -------------------------------------------------------------------------------


def event_kind(event: Any) -> str:
    """``http`` for API Gateway / Function URL / ALB events, else ``direct``."""
    if isinstance(event, Mapping) and ("httpMethod" in event or "requestContext" in event):
        return HTTP_EVENT
    return DIRECT_EVENT


def http_method(event: Mapping[str, Any]) -> str:
    """The HTTP method of an API Gateway v1/v2, Function URL or ALB event."""
    if "httpMethod" in event:  # REST API (v1) and ALB
        method = event["httpMethod"]
    else:
        context = event.get("requestContext")
        http = context.get("http") if isinstance(context, Mapping) else None
        if not isinstance(http, Mapping) or "method" not in http:
            raise BadRequestError(
                "HTTP event without a method (neither httpMethod nor requestContext.http.method)"
            )
        method = http["method"]  # HTTP API v2 and Function URLs
    if not isinstance(method, str) or not method:
        raise BadRequestError(f"HTTP event method must be a non-empty string, got {quote(method)}")
    return method.upper()


def http_payload(event: Mapping[str, Any]) -> Any:
    """The parsed JSON body of an HTTP event (base64 when ``isBase64Encoded``).

    Parsed by the data plane's ``parse_json``, as every transport's body is.
    """
    body = event.get("body")
    if isinstance(body, Mapping):  # a hand-written test event with the body as an object
        return body
    if body is None or body == "":
        raise BadRequestError("empty request body; expected a JSON inference request")
    if not isinstance(body, str):
        raise BadRequestError(f"request body must be a string, got {type(body).__name__}")
    encoded = event.get("isBase64Encoded", False)
    if encoded is not None and not isinstance(encoded, bool):
        raise BadRequestError(f"isBase64Encoded must be true or false, got {quote(encoded)}")
    if not encoded:
        return parse_json(body)
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadRequestError(f"body is marked base64 but is not valid base64: {e}") from e
    return parse_json(raw)


def http_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway / Function URL proxy response with a JSON body."""
    return {
        "statusCode": status,
        "headers": {**JSON_HEADERS, **(headers or {})},
        "body": json.dumps(body, separators=(",", ":"), allow_nan=False),
        "isBase64Encoded": False,
    }


def error_response(kind: str, status: int, error: Mapping[str, Any]) -> dict[str, Any]:
    """The error answer for an event of ``kind``: ``{"error": {"code", "message"}}``."""
    if kind == HTTP_EVENT:
        headers = {"Allow": ", ".join(ALLOWED_METHODS)} if status == 405 else None
        return http_response(status, {"error": dict(error)}, headers)
    return {"statusCode": status, "error": dict(error)}


# -- observability ------------------------------------------------------------------------


class _StdoutHandler(logging.StreamHandler):
    """Writes to ``sys.stdout`` as it is at each record: a harness may swap it after init."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


@dataclass(frozen=True)
class _LocalContext:
    """Stands in for the Lambda context when invoked without one (local runs, tests)."""

    function_name: str
    memory_limit_in_mb: int = 0
    invoked_function_arn: str = "local"
    aws_request_id: str = "local"


_POWERTOOLS_LOGGERS: dict[str, Any] = {}


class _Observability:
    """Logs, telemetry sink and metrics: Powertools when present, else stdlib logging."""

    def __init__(self, service: str, namespace: str, *, metrics: bool) -> None:
        self.service = service
        self._metrics: Any = None
        try:
            from aws_lambda_powertools import Logger, Metrics
        except ImportError:
            self.powertools = False
            self.logger: Any = _stdlib_logger(service)
            return
        self.powertools = True
        # One Powertools Logger per service and process: a second instance would find the
        # stdlib logger already configured and keep a handler without a formatter.
        if service not in _POWERTOOLS_LOGGERS:
            _POWERTOOLS_LOGGERS[service] = Logger(service=service, logger_handler=_StdoutHandler())
        self.logger = _POWERTOOLS_LOGGERS[service]
        if metrics:
            self._metrics = Metrics(namespace=namespace, service=service)

    def add_metric(self, name: str, unit: str, value: float) -> None:
        if self._metrics is not None:
            self._metrics.add_metric(name=name, unit=unit, value=value)

    def log_event(self, event: TelemetryEvent) -> None:
        level = logging.WARNING if event.name == ERROR else logging.INFO
        if self.powertools:
            self.logger.log(level, event.name, extra={"telemetry": dict(event.fields)})
        else:
            self.logger.log(level, "%s %s", event.name, json.dumps(dict(event.fields), default=str))

    def wrap(self, handle: Handler) -> Handler:
        """``handle`` with the Lambda context in the logs and metrics flushed per invocation."""
        wrapped = handle
        if self.powertools:
            wrapped = self.logger.inject_lambda_context(wrapped)
        if self._metrics is not None:
            wrapped = self._metrics.log_metrics(wrapped, capture_cold_start_metric=True)

        def handler(event: Any, context: Any) -> dict[str, Any]:
            if not all(hasattr(context, f) for f in _LAMBDA_CONTEXT_FIELDS):
                context = _LocalContext(function_name=self.service)
            return wrapped(event, context)

        return handler


def _stdlib_logger(service: str) -> logging.Logger:
    logger = logging.getLogger(f"edgepack_runtime.{service}")
    if not logger.handlers:
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


# -- the handler --------------------------------------------------------------------------


def create_handler(root: Path) -> Handler:
    """Load the artifact at ``root`` once and return the Lambda handler ``(event, context)``."""
    root = Path(root)
    manifest = Manifest.load(root)
    settings = manifest.telemetry
    enabled = bool(settings.get("enabled", True))
    service = str(settings.get("service") or manifest.name)
    namespace = str(settings.get("namespace") or f"edgepack/{manifest.name}")
    obs = _Observability(service, namespace, metrics=enabled)

    telemetry = Telemetry()
    if enabled:
        telemetry.add_sink(obs.log_event)
    try:
        hooks = load_hooks(manifest.hooks, root)
        if hooks.on_event is not None:
            telemetry.add_sink(hooks.on_event)
        predictor = Predictor.from_artifact(root, telemetry, manifest=manifest)
    except InferenceError as e:
        obs.logger.error(f"cannot load the model: {e.message}")
        raise
    # With SnapStart, warm the model on the recorded sample before Lambda's snapshot.
    register_snapstart_hooks(predictor, root, manifest, log=obs.logger.info)
    dataplane = DataPlane(
        predictor, model_name=manifest.name, model_version=manifest.version, hooks=hooks, telemetry=telemetry
    )

    def handle(event: Any, context: Any) -> dict[str, Any]:
        obs.add_metric("Invocations", "Count", 1)
        kind = event_kind(event)
        stage = "transport"  # errors past this stage are reported by the data plane itself
        try:
            if kind == HTTP_EVENT:
                method = http_method(event)
                if method == "GET":
                    return http_response(200, dataplane.metadata())
                if method != "POST":
                    raise MethodNotAllowedError(
                        f"method {quote(method)} not allowed; use POST to infer, GET for metadata"
                    )
                payload = http_payload(event)
            else:
                payload = event
            stage = "dataplane"
            result = dataplane.run(payload)
            answer = http_response(200, result.response) if kind == HTTP_EVENT else result.response
        except InferenceError as e:
            obs.add_metric("Errors", "Count", 1)
            if stage == "transport":
                telemetry.emit(ERROR, stage=stage, code=e.code, status=e.status, message=e.message)
            if e.status < 500:
                return error_response(kind, e.status, e.to_dict())
            obs.logger.exception(f"inference failed: {e.message}")
            return error_response(kind, e.status, _internal_error(e.code, context))
        except Exception as e:
            obs.add_metric("Errors", "Count", 1)
            obs.logger.exception(f"unexpected error: {type(e).__name__}: {clip(str(e), 2048)}")
            return error_response(kind, 500, _internal_error("internal_error", context))
        obs.add_metric("InferenceLatency", "Milliseconds", result.timings_ms["predict"])
        return answer

    return obs.wrap(handle)


def _internal_error(code: str, context: Any) -> dict[str, str]:
    request_id = getattr(context, "aws_request_id", None)
    where = f" (request id {request_id})" if request_id else ""
    return {"code": code, "message": f"internal error{where}; see the function's logs"}
