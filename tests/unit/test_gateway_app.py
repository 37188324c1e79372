"""The gateway app factory and its JSON logs, in-process."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from harness.stack.process import free_loopback_port
from target_service.app import create_app, redact_url
from target_service.config import GatewayConfig
from target_service.observability import JsonFormatter


def make_config() -> GatewayConfig:
    return GatewayConfig(
        redis={"url": f"redis://127.0.0.1:{free_loopback_port()}/0", "timeout_s": 0.2},
        upstreams={"primary": {"base_url": f"http://127.0.0.1:{free_loopback_port()}/v1"}},
        models={"mock-llm": {"upstream": "primary"}},
        auth={"allow_anonymous": True},
    )


@pytest.fixture
def two_clients() -> Iterator[tuple[TestClient, TestClient]]:
    with TestClient(create_app(make_config())) as first, TestClient(create_app(make_config())) as second:
        yield first, second


def requests_counted(client: TestClient) -> str:
    return "\n".join(
        line for line in client.get("/metrics").text.splitlines() if "slogate_requests_total{" in line
    )


def test_apps_keep_separate_metrics(two_clients: tuple[TestClient, TestClient]) -> None:
    first, second = two_clients
    first.post(
        "/v1/chat/completions", json={"model": "absent", "messages": [{"role": "user", "content": "x"}]}
    )
    assert 'status="404"' in requests_counted(first)
    assert requests_counted(second) == ""


def test_unknown_path_openai_error(two_clients: tuple[TestClient, TestClient]) -> None:
    response = two_clients[0].get("/v1/nothing-here")
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_wrong_method_openai_error(two_clients: tuple[TestClient, TestClient]) -> None:
    response = two_clients[0].get("/v1/chat/completions")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_redact_url_hides_password() -> None:
    assert redact_url("redis://user:s3cret@127.0.0.1:6379/0") == "redis://user:***@127.0.0.1:6379/0"


def test_redact_url_keeps_plain_url() -> None:
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def format_record(**extra: object) -> dict[str, object]:
    record = logging.LogRecord("target_service", logging.INFO, __file__, 1, "request", None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    parsed: dict[str, object] = json.loads(JsonFormatter().format(record))
    return parsed


def test_json_formatter_event_fields() -> None:
    entry = format_record(event="request", request_id="abc", status=200)
    assert entry["event"] == "request"
    assert entry["request_id"] == "abc"
    assert entry["status"] == 200
    assert str(entry["ts"]).endswith("+00:00")


def test_json_formatter_plain_record() -> None:
    entry = format_record()
    assert entry["event"] == "log"
    assert entry["message"] == "request"
    assert entry["logger"] == "target_service"
