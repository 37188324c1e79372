"""W3C trace context through a real gateway process, and OpenTelemetry spans with an in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from target_service.app import create_app
from target_service.config import GatewayConfig
from target_service.tracing import parse_traceparent
from tests.integration.gateway_helpers import (
    MESSAGES,
    auth_headers,
    chat,
    gateway_config,
    mock_stats,
    request_log,
    upstream,
)
from tests.integration.servers import RunningServer, running_gateway, running_mock

INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_mock("mock", tmp_path_factory.mktemp("tracing"), "--output-tokens", "4") as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, mock: RunningServer
) -> Iterator[RunningServer]:
    config = gateway_config(redis_url, {"primary": upstream(mock)})
    with running_gateway("gateway", tmp_path_factory.mktemp("tracing-gateway"), config) as server:
        yield server


def test_traceparent_continued_and_propagated(gateway: RunningServer, mock: RunningServer) -> None:
    response = chat(gateway, headers={"traceparent": INCOMING, "x-request-id": "trace-1"})
    returned = parse_traceparent(response.headers["traceparent"])
    sent = parse_traceparent(mock_stats(mock)["arrivals"][-1]["traceparent"])
    assert returned is not None and sent is not None
    assert returned.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert returned.span_id != "00f067aa0ba902b7"
    assert sent.trace_id == returned.trace_id
    assert sent.span_id not in (returned.span_id, "00f067aa0ba902b7")
    assert request_log(gateway, "trace-1")["trace_id"] == returned.trace_id


@pytest.mark.parametrize(
    "offered", [None, "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"]
)
def test_traceparent_generated_when_missing_or_invalid(gateway: RunningServer, offered: str | None) -> None:
    headers = {"traceparent": offered} if offered is not None else {}
    returned = parse_traceparent(chat(gateway, headers=headers).headers["traceparent"])
    assert returned is not None
    assert returned.trace_id != "0" * 32


def test_logs_keep_prompts_and_keys_out(gateway: RunningServer) -> None:
    chat(gateway, headers={"x-request-id": "secret-check"})
    request_log(gateway, "secret-check")
    log = gateway.process.log_path.read_text(encoding="utf-8")
    assert MESSAGES[0]["content"] not in log
    assert auth_headers()["authorization"].split()[1] not in log


def test_otel_spans_exported(tmp_path: Path, redis_url: str, mock: RunningServer) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = GatewayConfig(**gateway_config(redis_url, {"primary": upstream(mock)}, otel={"enabled": True}))
    with TestClient(create_app(config, tracer_provider=provider)) as client:
        body = {"model": "mock-llm", "messages": MESSAGES}
        response = client.post(
            "/v1/chat/completions", json=body, headers={**auth_headers(), "traceparent": INCOMING}
        )
    spans = {span.kind: span for span in exporter.get_finished_spans()}
    server, attempt = spans[SpanKind.SERVER], spans[SpanKind.CLIENT]
    sent = parse_traceparent(mock_stats(mock)["arrivals"][-1]["traceparent"])
    assert response.status_code == 200
    assert f"{server.context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert attempt.parent is not None and attempt.parent.span_id == server.context.span_id
    assert attempt.attributes is not None and attempt.attributes["slogate.upstream"] == "primary"
    assert sent is not None and sent.span_id == f"{attempt.context.span_id:016x}"
    assert response.headers["traceparent"].split("-")[2] == f"{server.context.span_id:016x}"
