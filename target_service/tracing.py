"""W3C trace context (``traceparent``) of each request, and OpenTelemetry spans when ``otel.enabled``.

The gateway continues a valid incoming ``traceparent`` or starts a new trace, sends each upstream
attempt its own span id, and returns its own span in the response's ``traceparent``. With the
``otel`` extra enabled, those spans are OpenTelemetry spans, exported as the OTEL_* variables configure.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers

from target_service.config import GatewayConfig

# Version 00 has exactly these fields; a later version may append more (W3C Trace Context, section 3.2).
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_INVALID_TRACE_ID = "0" * 32
_INVALID_SPAN_ID = "0" * 16
DEFAULT_SERVICE_NAME = "slogate-gateway"


class TracingSetupError(Exception):
    """OpenTelemetry is enabled in the configuration but cannot be set up."""


@dataclass(frozen=True)
class TraceParent:
    """A parsed ``traceparent`` header."""

    trace_id: str
    span_id: str
    flags: str

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def parse_traceparent(value: str | None) -> TraceParent | None:
    """Return the fields of a valid ``traceparent``, or None for a missing or invalid one."""
    if value is None:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _INVALID_TRACE_ID:
        return None
    if span_id == _INVALID_SPAN_ID:
        return None
    return TraceParent(trace_id, span_id, flags)


class Span:
    """A span of the request or of one upstream attempt. Without OpenTelemetry it only has ids."""

    def __init__(self, trace_id: str, span_id: str, flags: str) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.flags = flags

    def traceparent(self) -> str:
        return TraceParent(self.trace_id, self.span_id, self.flags).header()

    def set_attribute(self, key: str, value: str | int | bool) -> None:
        """Record an attribute; a plain span keeps none."""

    def end(self, error: str | None = None) -> None:
        """End the span, marked failed with ``error`` when given; a plain span has nothing to do."""


class Tracer:
    """Makes request and attempt spans with W3C ids only; ``OtelTracer`` makes OpenTelemetry spans."""

    def request_span(self, headers: Headers, name: str) -> Span:
        """Start the span of a request, continuing the trace of its ``traceparent`` when valid."""
        parent = parse_traceparent(headers.get("traceparent"))
        if parent is None:
            return Span(secrets.token_hex(16), secrets.token_hex(8), "01")
        return Span(parent.trace_id, secrets.token_hex(8), parent.flags)

    def attempt_span(self, parent: Span, upstream: str, attempt: int) -> Span:
        """Start the child span of one call to ``upstream``; its id goes upstream in ``traceparent``."""
        return Span(parent.trace_id, secrets.token_hex(8), parent.flags)

    def shutdown(self) -> None:
        """Flush and stop exporting; nothing to do without OpenTelemetry."""


def build_tracer(config: GatewayConfig, provider: Any | None = None) -> Tracer:
    """Return the tracer for ``config``: OpenTelemetry when ``otel.enabled``, else W3C ids only.

    ``provider`` is a ready TracerProvider (tests pass one with an in-memory exporter); without it,
    one is built from the OTEL_* environment variables.
    """
    if not config.otel.enabled:
        return Tracer()
    try:
        from target_service.otel import OtelTracer, provider_from_environment
    except ImportError as exc:
        raise TracingSetupError(
            f"otel.enabled is true but OpenTelemetry is not installed ({exc}); "
            "install it with: pip install 'slogate[otel]'"
        ) from exc
    return OtelTracer(provider or provider_from_environment(os.environ))
