"""The gateway as a real process in front of real mock upstreams and a real Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client.parser import text_string_to_metric_families

from harness.stack.process import free_loopback_port
from target_service.config import hash_api_key
from target_service.mock_llm.generation import count_prompt_tokens, generate
from tests.integration.servers import RunningServer, running_gateway, running_mock

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Say something about gateways, please."}
]
OUTPUT_TOKENS = 16
API_KEY = "sk-test-gateway-team-a"
AUTH = {"authorization": f"Bearer {API_KEY}"}
TENANTS = {"team-a": {"keys": [{"id": "team-a-key", "sha256": hash_api_key(API_KEY)}]}}
METRIC_NAMES = {
    "slogate_requests_total",
    "slogate_request_duration_seconds",
    "slogate_ttft_seconds",
    "slogate_tokens_total",
    "slogate_upstream_errors_total",
    "slogate_in_flight_requests",
}


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="module")
def mock(log_dir: Path) -> Iterator[RunningServer]:
    with running_mock("mock", log_dir, "--output-tokens", str(OUTPUT_TOKENS)) as server:
        yield server


@pytest.fixture(scope="module")
def failing_mock(log_dir: Path) -> Iterator[RunningServer]:
    with running_mock("failing-mock", log_dir, "--error-rate", "1.0") as server:
        yield server


@pytest.fixture(scope="module")
def slow_mock(log_dir: Path) -> Iterator[RunningServer]:
    # 200 tokens at 20 tokens/s: a 10 s stream, far longer than the gateway's total timeout for it.
    with running_mock("slow-mock", log_dir, "--tokens-per-s", "20", "--output-tokens", "200") as server:
        yield server


def gateway_config(redis_url: str, mock: str, failing: str, slow: str) -> dict[str, Any]:
    dead_url = f"http://127.0.0.1:{free_loopback_port()}/v1"
    return {
        "redis": {"url": redis_url, "timeout_s": 0.5},
        "upstreams": {
            "primary": {"base_url": f"{mock}/v1"},
            "failing": {"base_url": f"{failing}/v1"},
            "slow": {"base_url": f"{slow}/v1", "idle_timeout_s": 0.5, "total_timeout_s": 1.0},
            "dead": {"base_url": dead_url, "connect_timeout_s": 0.5},
        },
        "models": {
            "mock-llm": {"upstream": "primary"},
            "renamed": {"upstream": "primary", "upstream_model": "mock-llm"},
            "misrouted": {"upstream": "primary", "upstream_model": "no-such-model"},
            "failing-llm": {"upstream": "failing", "upstream_model": "mock-llm"},
            "slow-llm": {"upstream": "slow", "upstream_model": "mock-llm"},
            "dead-llm": {"upstream": "dead", "upstream_model": "mock-llm"},
        },
        "tenants": TENANTS,
    }


@pytest.fixture(scope="module")
def gateway(
    log_dir: Path,
    redis_url: str,
    mock: RunningServer,
    failing_mock: RunningServer,
    slow_mock: RunningServer,
) -> Iterator[RunningServer]:
    config = gateway_config(redis_url, mock.url, failing_mock.url, slow_mock.url)
    with running_gateway("gateway", log_dir, config) as server:
        yield server


@pytest.fixture(scope="module")
def gateway_without_redis(log_dir: Path, mock: RunningServer) -> Iterator[RunningServer]:
    config = {
        "redis": {"url": f"redis://127.0.0.1:{free_loopback_port()}/0", "timeout_s": 0.2},
        "upstreams": {"primary": {"base_url": f"{mock.url}/v1"}},
        "models": {"mock-llm": {"upstream": "primary"}},
        "tenants": TENANTS,
        "rate_limits": {"on_redis_error": "fail_closed"},
    }
    with running_gateway("gateway-without-redis", log_dir, config) as server:
        yield server


@pytest.fixture(scope="module")
def client(gateway: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY, max_retries=0, timeout=10.0) as client:
        yield client


def post_chat(gateway: RunningServer, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions", json=body, headers={**AUTH, **(headers or {})}, timeout=10.0
    )


def sse_data(text: str) -> list[str]:
    return [event.removeprefix("data: ") for event in text.split("\n\n") if event]


def expected_content(messages: list[Any]) -> str:
    return generate(0, "mock-llm", messages, OUTPUT_TOKENS, None).text


def find_request_log(server: RunningServer, request_id: str, timeout_s: float = 3.0) -> dict[str, Any]:
    """Return the request log line with ``request_id``, which is written just after the response."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in server.process.log_path.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if entry.get("event") == "request" and entry.get("request_id") == request_id:
                return dict(entry)
        time.sleep(0.05)
    raise AssertionError(f"no request log line with request_id {request_id} in {server.process.log_path}")


def test_openai_client_completion(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="mock-llm", messages=MESSAGES)
    assert completion.choices[0].message.content == expected_content(MESSAGES)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == count_prompt_tokens(MESSAGES)
    assert completion.usage.completion_tokens == OUTPUT_TOKENS


def test_openai_client_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="mock-llm",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert content == expected_content(MESSAGES)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == OUTPUT_TOKENS
    assert chunks[-1].usage.prompt_tokens == count_prompt_tokens(MESSAGES)


def test_openai_client_stream_without_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="mock-llm", messages=MESSAGES, stream=True)
    chunks = list(stream)
    content = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert content == expected_content(MESSAGES)
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)


def test_stream_ends_with_done(gateway: RunningServer) -> None:
    response = post_chat(gateway, {"model": "mock-llm", "messages": MESSAGES, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert sse_data(response.text)[-1] == "[DONE]"


def test_upstream_model_rename(gateway: RunningServer) -> None:
    response = post_chat(gateway, {"model": "renamed", "messages": MESSAGES})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == expected_content(MESSAGES)


def test_unknown_fields_forwarded(gateway: RunningServer) -> None:
    body = {"model": "mock-llm", "messages": MESSAGES, "max_tokens": 3, "x_vendor_option": {"a": 1}}
    response = post_chat(gateway, body)
    assert response.json()["choices"][0]["finish_reason"] == "length"


def test_response_headers_carry_ids(gateway: RunningServer) -> None:
    response = post_chat(gateway, {"model": "mock-llm", "messages": MESSAGES}, {"x-request-id": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"
    assert response.headers["x-upstream"] == "primary"


def test_unsafe_request_id_replaced(gateway: RunningServer) -> None:
    response = post_chat(gateway, {"model": "mock-llm", "messages": MESSAGES}, {"x-request-id": "a b;c"})
    assert response.headers["x-request-id"] != "a b;c"
    assert len(response.headers["x-request-id"]) == 32


def test_list_models_configured_aliases(gateway: RunningServer) -> None:
    body = httpx.get(f"{gateway.url}/v1/models").json()
    assert body["object"] == "list"
    assert {model["id"] for model in body["data"]} >= {"mock-llm", "renamed", "failing-llm"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([1, 2], None),
        ({"messages": MESSAGES}, "model"),
        ({"model": "mock-llm"}, "messages"),
        ({"model": "mock-llm", "messages": []}, "messages"),
        ({"model": "mock-llm", "messages": MESSAGES, "stream": "yes"}, "stream"),
    ],
)
def test_bad_body_returns_400(gateway: RunningServer, body: Any, param: str | None) -> None:
    response = post_chat(gateway, body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.json()["error"]["param"] == param


def test_invalid_json_returns_400(gateway: RunningServer) -> None:
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=b"{not json", headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_model_returns_404(gateway: RunningServer) -> None:
    response = post_chat(gateway, {"model": "no-such-alias", "messages": MESSAGES})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_upstream_4xx_passed_through(gateway: RunningServer) -> None:
    response = post_chat(gateway, {"model": "misrouted", "messages": MESSAGES})
    assert response.status_code == 404
    assert "no-such-model" in response.json()["error"]["message"]


def test_upstream_500_returns_502(gateway: RunningServer) -> None:
    response = post_chat(gateway, {"model": "failing-llm", "messages": MESSAGES})
    assert response.status_code == 502
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert response.json()["error"]["code"] == "upstream_error"


def test_upstream_500_stream_returns_502(gateway: RunningServer) -> None:
    response = post_chat(gateway, {"model": "failing-llm", "messages": MESSAGES, "stream": True})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"


def test_unreachable_upstream_returns_502(gateway: RunningServer) -> None:
    response = post_chat(gateway, {"model": "dead-llm", "messages": MESSAGES})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error"


def test_slow_upstream_returns_504(gateway: RunningServer) -> None:
    response = post_chat(gateway, {"model": "slow-llm", "messages": MESSAGES})
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


def test_stream_timeout_ends_with_error_event(gateway: RunningServer) -> None:
    response = post_chat(gateway, {"model": "slow-llm", "messages": MESSAGES, "stream": True})
    events = sse_data(response.text)
    assert response.status_code == 200
    assert json.loads(events[-2])["error"]["code"] == "upstream_timeout"
    assert events[-1] == "[DONE]"


def test_client_disconnect_cancels_upstream(gateway: RunningServer, slow_mock: RunningServer) -> None:
    body = {"model": "slow-llm", "messages": MESSAGES, "stream": True}
    with (
        httpx.Client(timeout=10.0) as http,
        http.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, headers=AUTH) as response,
    ):
        chunks = response.iter_bytes()  # closing this iterator would close the connection
        next(chunks)
        assert httpx.get(f"{slow_mock.url}/mock/stats").json()["in_flight"] == 1
    deadline = time.monotonic() + 3.0
    while httpx.get(f"{slow_mock.url}/mock/stats").json()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(f"{slow_mock.url}/mock/stats").json()["in_flight"] == 0


def test_request_log_line_fields(gateway: RunningServer) -> None:
    secret_prompt = [{"role": "user", "content": "zebra-marker-5417 must never reach a log"}]
    post_chat(gateway, {"model": "mock-llm", "messages": secret_prompt}, {"x-request-id": "log-check-1"})
    entry = find_request_log(gateway, "log-check-1")
    assert entry["status"] == 200
    assert entry["model"] == "mock-llm"
    assert entry["upstream"] == "primary"
    assert entry["completion_tokens"] == OUTPUT_TOKENS
    assert entry["latency_ms"] > 0
    assert "zebra-marker-5417" not in gateway.process.log_path.read_text(encoding="utf-8")


def test_request_log_line_for_error(gateway: RunningServer) -> None:
    post_chat(gateway, {"model": "failing-llm", "messages": MESSAGES}, {"x-request-id": "log-check-2"})
    entry = find_request_log(gateway, "log-check-2")
    assert entry["status"] == 502
    assert entry["error_class"] == "http_5xx"


def test_stream_log_line_has_ttft(gateway: RunningServer) -> None:
    body = {"model": "mock-llm", "messages": MESSAGES, "stream": True}
    post_chat(gateway, body, {"x-request-id": "log-check-3"})
    entry = find_request_log(gateway, "log-check-3")
    assert entry["stream"] is True
    assert entry["ttft_ms"] > 0
    assert entry["prompt_tokens"] == count_prompt_tokens(MESSAGES)


def scrape_samples(gateway: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{gateway.url}/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_names_present(gateway: RunningServer) -> None:
    post_chat(gateway, {"model": "mock-llm", "messages": MESSAGES, "stream": True})
    post_chat(gateway, {"model": "failing-llm", "messages": MESSAGES})
    names = {name for name, _ in scrape_samples(gateway)}
    missing = {name for name in METRIC_NAMES if not any(found.startswith(name) for found in names)}
    assert not missing


def test_metrics_count_requests(gateway: RunningServer) -> None:
    post_chat(gateway, {"model": "mock-llm", "messages": MESSAGES})
    samples = scrape_samples(gateway)
    labels = (("key_id", "team-a-key"), ("model", "mock-llm"), ("status", "200"), ("tenant", "team-a"))
    assert samples[("slogate_requests_total", labels)] > 0
    token_labels = (
        ("key_id", "team-a-key"),
        ("kind", "completion"),
        ("model", "mock-llm"),
        ("tenant", "team-a"),
    )
    assert samples[("slogate_tokens_total", token_labels)] > 0
    assert samples[("slogate_in_flight_requests", ())] == 0


def test_metrics_skip_other_methods(gateway: RunningServer) -> None:
    assert httpx.get(f"{gateway.url}/v1/chat/completions").status_code == 405
    samples = scrape_samples(gateway)
    assert not any(
        name == "slogate_requests_total" and ("status", "405") in labels for name, labels in samples
    )


def test_metrics_count_upstream_errors(gateway: RunningServer) -> None:
    post_chat(gateway, {"model": "failing-llm", "messages": MESSAGES})
    samples = scrape_samples(gateway)
    labels = (("error_class", "http_5xx"), ("upstream", "failing"))
    assert samples[("slogate_upstream_errors_total", labels)] > 0


def test_readyz_ok_with_redis(gateway: RunningServer) -> None:
    response = httpx.get(f"{gateway.url}/readyz")
    assert response.status_code == 200
    checks = {"redis": "ok", "upstreams": 4, "on_redis_error": "fail_open"}
    assert response.json() == {"status": "ready", "checks": checks}


def test_readyz_503_without_redis(gateway_without_redis: RunningServer) -> None:
    response = httpx.get(f"{gateway_without_redis.url}/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not_ready"
    assert response.json()["checks"]["redis"].startswith("error:")


def test_healthz_ok_without_redis(gateway_without_redis: RunningServer) -> None:
    response = httpx.get(f"{gateway_without_redis.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
