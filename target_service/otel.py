"""OpenTelemetry spans of the gateway, from the optional ``otel`` extra (opentelemetry-sdk).

Only ``tracing.build_tracer`` imports this module, so the gateway runs without the extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.datastructures import Headers

from target_service.tracing import DEFAULT_SERVICE_NAME, Span, Tracer, TracingSetupError

INSTRUMENTATION_NAME = "slogate.gateway"


class OtelSpan(Span):
    """A Span backed by an OpenTelemetry span."""

    def __init__(self, span: trace.Span) -> None:
        context = span.get_span_context()
        super().__init__(
            trace.format_trace_id(context.trace_id),
            trace.format_span_id(context.span_id),
            f"{int(context.trace_flags):02x}",
        )
        self.span = span

    def set_attribute(self, key: str, value: str | int | bool) -> None:
        self.span.set_attribute(key, value)

    def end(self, error: str | None = None) -> None:
        if error is not None:
            self.span.set_status(Status(StatusCode.ERROR, error))
        self.span.end()


class OtelTracer(Tracer):
    """Starts a server span per request and a client span per upstream attempt."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer(INSTRUMENTATION_NAME)
        self.propagator = TraceContextTextMapPropagator()

    def request_span(self, headers: Headers, name: str) -> Span:
        parent = self.propagator.extract(carrier={key: value for key, value in headers.items()})
        return OtelSpan(self.tracer.start_span(name, context=parent, kind=SpanKind.SERVER))

    def attempt_span(self, parent: Span, upstream: str, attempt: int) -> Span:
        assert isinstance(parent, OtelSpan)
        context = trace.set_span_in_context(parent.span)
        span = self.tracer.start_span(f"chat {upstream}", context=context, kind=SpanKind.CLIENT)
        span.set_attribute("slogate.upstream", upstream)
        span.set_attribute("slogate.attempt", attempt)
        return OtelSpan(span)

    def shutdown(self) -> None:
        shutdown = getattr(self.provider, "shutdown", None)
        if shutdown is not None:
            shutdown()


def provider_from_environment(environ: Mapping[str, str]) -> TracerProvider:
    """Build a TracerProvider configured by the OTEL_* variables.

    OTEL_TRACES_EXPORTER lists exporters: ``otlp`` (the default; OTLP over HTTP, configured by
    OTEL_EXPORTER_OTLP_*), ``console`` or ``none``. OTEL_SERVICE_NAME names the service, and the
    SDK itself reads OTEL_TRACES_SAMPLER and OTEL_SDK_DISABLED.
    """
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    names = [name.strip() for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if name.strip()]
    for name in names:
        exporter = _exporter(name)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _exporter(name: str) -> SpanExporter | None:
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise TracingSetupError(
                "OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http: "
                "pip install 'slogate[otel]'"
            ) from exc
        return OTLPSpanExporter()
    raise TracingSetupError(f"unsupported OTEL_TRACES_EXPORTER value {name!r}; use otlp, console or none")
