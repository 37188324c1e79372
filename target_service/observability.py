"""JSON logs and the per-request record that feeds the request log line and the metrics."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from target_service.errors import INTERNAL_ERROR_BODY, ErrorClass
from target_service.metrics import UNAUTHENTICATED, UNKNOWN_MODEL, GatewayMetrics

if TYPE_CHECKING:
    from target_service.lifecycle import Lifecycle
    from target_service.tracing import Span, Tracer

logger = logging.getLogger("target_service")
request_logger = logging.getLogger("target_service.requests")

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_LOGGED_MODEL_CHARS = 128

# Attributes of every LogRecord, those set by formatters, and uvicorn's terminal-only "color_message".
# Any other attribute came from `extra` and becomes a field of the JSON line.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """Format a log record as one JSON object per line.

    A record logged with ``extra={"event": ..., **fields}`` becomes ``{"ts", "level", "event", **fields}``.
    Any other record gets ``event: "log"`` with its logger name and message.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
        }
        extra = {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}
        if "event" not in extra:
            entry.update(event="log", logger=record.name, message=record.getMessage())
        entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str) -> None:
    """Send every log record of the process to stdout as JSON lines at ``level`` and above."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event through the gateway logger."""
    logger.log(level, event, extra={"event": event, **fields})


class LogThrottle:
    """Lets at most ``max_lines`` lines per key through in each ``interval_s``, and reports the rest.

    When a key's interval ends with lines held back, the next line for that key is preceded by
    a ``log_lines_suppressed`` event with their count, so an outage logs a few lines a second,
    not one per request.
    """

    def __init__(self, max_lines: int = 5, interval_s: float = 10.0) -> None:
        self.max_lines = max_lines
        self.interval_s = interval_s
        self._keys: dict[tuple[str, ...], list[float]] = {}
        """Per key: [interval start, lines logged, lines held back]."""

    def allow(self, *key: str) -> bool:
        """Return True when a line for ``key`` may be logged now, counting it either way."""
        now = time.monotonic()
        state = self._keys.setdefault(key, [now, 0, 0])
        if now - state[0] >= self.interval_s:
            if state[2]:
                log_event("log_lines_suppressed", logging.WARNING, key=list(key), count=int(state[2]))
            state[:] = [now, 0, 0]
        if state[1] < self.max_lines:
            state[1] += 1
            return True
        state[2] += 1
        return False


def announce_listening(url: str, **fields: Any) -> None:
    """Log the ``listening`` event whatever the log level, because parents read the address from it."""
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, "listening", (), None)
    record.__dict__.update(event="listening", url=url, **fields)
    for handler in logging.getLogger().handlers:
        handler.handle(record)


@dataclass
class RequestRecord:
    """Facts about one request, filled in by the handlers while they work and logged at its end."""

    request_id: str
    method: str
    path: str
    started_s: float = field(default_factory=time.perf_counter)
    tenant: str | None = None
    key_id: str | None = None
    model: str | None = None
    model_configured: bool = False
    cache: str | None = None
    """The x-cache value sent: hit, miss or bypass; None when the cache is off."""
    response_headers: dict[str, str] = field(default_factory=dict)
    """Headers the handlers decided on (x-cache, x-ratelimit-*); the middleware adds them to the response."""
    upstream: str | None = None
    status: int | None = None
    stream: bool = False
    ttft_s: float | None = None
    latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error_class: ErrorClass | None = None
    attempts: int = 0
    """Upstream calls made, retries and fallbacks included."""
    span: Span | None = None
    """The request's span; its ids are the trace id logged and the ``traceparent`` returned."""
    tracestate: str | None = None
    """The client's ``tracestate`` header, passed on to upstreams unchanged."""
    on_finish: list[Callable[[], None]] = field(default_factory=list)
    """Releases to run when the response has ended, such as load-shedding counts."""

    def mark_first_token(self) -> None:
        if self.ttft_s is None:
            self.ttft_s = time.perf_counter() - self.started_s

    def log_fields(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "trace_id": self.span.trace_id if self.span is not None else None,
            "method": self.method,
            "path": self.path,
            "tenant": self.tenant,
            "key_id": self.key_id,
            "model": self.model,
            "cache": self.cache,
            "upstream": self.upstream,
            "attempts": self.attempts,
            "status": self.status,
            "stream": self.stream,
            "latency_ms": _milliseconds(self.latency_s),
            "ttft_ms": _milliseconds(self.ttft_s),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "error_class": self.error_class,
        }


def request_record(request: Request) -> RequestRecord:
    """Return the record that the middleware attached to ``request``."""
    record = request.state.record
    assert isinstance(record, RequestRecord)
    return record


def choose_request_id(headers: Headers) -> str:
    """Return the client's ``x-request-id`` when it is a safe token of at most 128 chars, else a new one."""
    offered = headers.get("x-request-id")
    if offered is not None and REQUEST_ID_PATTERN.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


class RequestObserver:
    """ASGI middleware that times each request, sets the id headers, logs it and updates the metrics.

    It also starts the request's span, answers with ``connection: close`` while the replica
    drains, and turns an exception that escaped the handlers into a 500 with an OpenAI error body.
    """

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics, tracer: Tracer, lifecycle: Lifecycle) -> None:
        self.app = app
        self.metrics = metrics
        self.tracer = tracer
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        record = RequestRecord(choose_request_id(headers), scope["method"], scope["path"])
        scope.setdefault("state", {})["record"] = record
        is_chat = record.path == CHAT_COMPLETIONS_PATH and record.method == "POST"
        if record.path not in PROBE_PATHS:
            record.span = self.tracer.request_span(headers, f"{record.method} {record.path}")
            record.tracestate = headers.get("tracestate")
        if is_chat:
            self.metrics.in_flight.inc()
        try:
            await self._call_app(scope, receive, send, record)
        finally:
            record.latency_s = time.perf_counter() - record.started_s
            for release in record.on_finish:
                release()
            if is_chat:
                self.metrics.in_flight.dec()
                self._observe(record)
            self._end_span(record)
            level = logging.DEBUG if record.path in PROBE_PATHS else logging.INFO
            request_logger.log(level, "request", extra={"event": "request", **record.log_fields()})

    def _end_span(self, record: RequestRecord) -> None:
        if record.span is None:
            return
        record.span.set_attribute("http.response.status_code", record.status or 0)
        if record.upstream is not None:
            record.span.set_attribute("slogate.upstream", record.upstream)
        record.span.set_attribute("slogate.attempts", record.attempts)
        error: str | None = None
        if record.error_class is not None:
            error = record.error_class
        elif (record.status or 500) >= 500:
            error = f"HTTP {record.status}"
        record.span.end(error)

    async def _call_app(self, scope: Scope, receive: Receive, send: Send, record: RequestRecord) -> None:
        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = record.request_id
                if record.span is not None:
                    headers["traceparent"] = record.span.traceparent()
                if record.upstream is not None:
                    headers["x-upstream"] = record.upstream
                if self.lifecycle.draining:
                    headers["connection"] = "close"
                for name, value in record.response_headers.items():
                    headers.setdefault(name, value)
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        except Exception:
            logger.exception(
                "unhandled error", extra={"event": "unhandled_error", "request_id": record.request_id}
            )
            if record.status is None:
                await _send_internal_error(send_with_ids)

    def _observe(self, record: RequestRecord) -> None:
        model = record.model if record.model_configured and record.model is not None else UNKNOWN_MODEL
        tenant = record.tenant or UNAUTHENTICATED
        key_id = record.key_id or UNAUTHENTICATED
        self.metrics.requests.labels(
            tenant=tenant, key_id=key_id, model=model, status=str(record.status or 0)
        ).inc()
        self.metrics.request_duration.labels(model=model).observe(record.latency_s or 0.0)
        if record.ttft_s is not None:
            self.metrics.ttft.labels(model=model).observe(record.ttft_s)
        if record.prompt_tokens:
            self.metrics.tokens.labels(tenant, key_id, model, "prompt").inc(record.prompt_tokens)
        if record.completion_tokens:
            self.metrics.tokens.labels(tenant, key_id, model, "completion").inc(record.completion_tokens)


async def _send_internal_error(send: Send) -> None:
    body = json.dumps(INTERNAL_ERROR_BODY).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _milliseconds(seconds: float | None) -> float | None:
    return round(seconds * 1000, 3) if seconds is not None else None


def truncate_model(model: str) -> str:
    """Return ``model`` cut to the length the request log keeps."""
    return model[:MAX_LOGGED_MODEL_CHARS]
