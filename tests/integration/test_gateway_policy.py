"""Authentication, the response cache and rate-limit headers of a real gateway process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from target_service.config import hash_api_key
from tests.integration.servers import RunningServer, running_gateway, running_mock

KEYS = {"alpha": "sk-test-alpha", "beta": "sk-test-beta", "limited": "sk-test-limited"}
MESSAGES = [{"role": "user", "content": "Name a prime number."}]
MOCK_TTFT_MS = 150


def tenants() -> dict[str, Any]:
    result: dict[str, Any] = {
        name: {"keys": [{"id": f"{name}-key", "sha256": hash_api_key(key)}]} for name, key in KEYS.items()
    }
    result["limited"]["limits"] = {"requests_per_minute": 600, "tokens_per_minute": 60000}
    return result


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("policy")


@pytest.fixture(scope="module")
def mock(log_dir: Path) -> Iterator[RunningServer]:
    flags = ("--ttft-ms", str(MOCK_TTFT_MS), "--tokens-per-s", "0", "--output-tokens", "8")
    with running_mock("mock", log_dir, *flags) as server:
        yield server


def config(redis_url: str, mock: RunningServer, **overrides: Any) -> dict[str, Any]:
    return {
        "redis": {"url": redis_url},
        "upstreams": {"primary": {"base_url": f"{mock.url}/v1"}},
        "models": {
            "mock-llm": {"upstream": "primary"},
            "other": {"upstream": "primary", "upstream_model": "nope"},
        },
        "tenants": tenants(),
        "cache": {"enabled": True, "ttl_s": 60},
        **overrides,
    }


@pytest.fixture(scope="module")
def gateway(log_dir: Path, redis_url: str, mock: RunningServer) -> Iterator[RunningServer]:
    with running_gateway("gateway", log_dir, config(redis_url, mock)) as server:
        yield server


@pytest.fixture(autouse=True)
def empty_redis(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()


def chat(
    gateway: RunningServer,
    tenant: str | None = "alpha",
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    body = {"model": "mock-llm", "messages": MESSAGES, "temperature": 0, **fields}
    auth = {"authorization": f"Bearer {KEYS[tenant]}"} if tenant else {}
    return httpx.post(
        f"{gateway.url}/v1/chat/completions", json=body, headers={**auth, **(headers or {})}, timeout=10
    )


def mock_requests(mock: RunningServer) -> int:
    return int(httpx.get(f"{mock.url}/mock/stats").json()["requests"])


def log_lines(server: RunningServer) -> list[dict[str, Any]]:
    return [
        json.loads(line) for line in server.process.log_path.read_text().splitlines() if line.startswith("{")
    ]


def test_auth_missing_key_401(gateway: RunningServer) -> None:
    response = chat(gateway, tenant=None)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.headers["www-authenticate"] == "Bearer"


def test_auth_unknown_key_401(gateway: RunningServer) -> None:
    response = chat(gateway, tenant=None, headers={"authorization": "Bearer sk-not-a-key"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_auth_malformed_header_401(gateway: RunningServer) -> None:
    response = chat(gateway, tenant=None, headers={"authorization": "Basic abc"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_authorization_header"


def test_auth_tenant_in_log_key_never(gateway: RunningServer) -> None:
    chat(gateway, headers={"x-request-id": "auth-log-1"})
    chat(
        gateway,
        tenant=None,
        headers={"authorization": "Bearer sk-wrong-secret", "x-request-id": "auth-log-2"},
    )
    # The request log line is written just after the response's last byte, so wait for it.
    deadline = time.monotonic() + 3.0
    entries: dict[str, Any] = {}
    while "auth-log-2" not in entries and time.monotonic() < deadline:
        entries = {entry.get("request_id"): entry for entry in log_lines(gateway)}
        time.sleep(0.02)
    text = gateway.process.log_path.read_text()
    assert entries["auth-log-1"]["tenant"] == "alpha"
    assert entries["auth-log-1"]["key_id"] == "alpha-key"
    assert entries["auth-log-2"]["status"] == 401
    assert KEYS["alpha"] not in text
    assert "sk-wrong-secret" not in text


def test_auth_metrics_labelled_by_tenant(gateway: RunningServer) -> None:
    chat(gateway, tenant="beta")
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'slogate_requests_total{key_id="beta-key",model="mock-llm",status="200",tenant="beta"}' in metrics


def test_cache_miss_then_hit(gateway: RunningServer, mock: RunningServer) -> None:
    first = chat(gateway)
    before = mock_requests(mock)
    second = chat(gateway)
    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit"
    assert second.json()["choices"] == first.json()["choices"]
    assert mock_requests(mock) == before
    assert second.elapsed.total_seconds() < MOCK_TTFT_MS / 1000


def test_cache_skips_absent_temperature(gateway: RunningServer, mock: RunningServer) -> None:
    body = {"model": "mock-llm", "messages": MESSAGES}
    headers = {"authorization": f"Bearer {KEYS['alpha']}"}
    before = mock_requests(mock)
    responses = [
        httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers) for _ in range(2)
    ]
    assert [response.headers["x-cache"] for response in responses] == ["bypass", "bypass"]
    assert mock_requests(mock) == before + 2


def test_cache_seed_makes_cacheable(gateway: RunningServer) -> None:
    assert [chat(gateway, temperature=0.8, seed=7).headers["x-cache"] for _ in range(2)] == ["miss", "hit"]


def test_cache_opt_in_header(gateway: RunningServer) -> None:
    headers = {"x-cache-opt-in": "true"}
    assert [chat(gateway, headers=headers, temperature=0.8).headers["x-cache"] for _ in range(2)] == [
        "miss",
        "hit",
    ]


def test_cache_no_cache_refreshes_entry(gateway: RunningServer) -> None:
    chat(gateway)
    assert chat(gateway, headers={"cache-control": "no-cache"}).headers["x-cache"] == "bypass"
    assert chat(gateway).headers["x-cache"] == "hit"


def test_cache_no_store_stores_nothing(gateway: RunningServer) -> None:
    results = [chat(gateway, headers={"cache-control": "no-store"}).headers["x-cache"] for _ in range(2)]
    assert results == ["miss", "miss"]


def test_cache_unknown_field_in_key(gateway: RunningServer) -> None:
    chat(gateway, vendor_option=1)
    assert chat(gateway, vendor_option=2).headers["x-cache"] == "miss"
    assert chat(gateway, vendor_option=1).headers["x-cache"] == "hit"


def test_cache_isolates_tenants(gateway: RunningServer) -> None:
    alpha = chat(gateway, tenant="alpha")
    beta = chat(gateway, tenant="beta")
    assert alpha.headers["x-cache"] == "miss"
    assert beta.headers["x-cache"] == "miss"


def test_cache_replays_json_as_stream(gateway: RunningServer) -> None:
    stored = chat(gateway).json()
    streamed = chat(gateway, stream=True, stream_options={"include_usage": True})
    events = [json.loads(line[6:]) for line in streamed.text.split("\n\n") if line and line != "data: [DONE]"]
    content = "".join(choice["delta"].get("content") or "" for event in events for choice in event["choices"])
    assert streamed.headers["x-cache"] == "hit"
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert content == stored["choices"][0]["message"]["content"]
    assert events[-1]["usage"] == stored["usage"]
    assert streamed.text.endswith("data: [DONE]\n\n")


def test_cache_stores_streams_for_json(gateway: RunningServer) -> None:
    streamed = chat(gateway, stream=True)
    replayed = chat(gateway)
    content = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in streamed.text.split("\n\n")
        if line.startswith("data: {")
    )
    assert streamed.headers["x-cache"] == "miss"
    assert replayed.headers["x-cache"] == "hit"
    assert replayed.json()["choices"][0]["message"]["content"] == content


def test_cache_never_stores_errors(gateway: RunningServer) -> None:
    responses = [chat(gateway, model="other") for _ in range(2)]
    assert [response.status_code for response in responses] == [404, 404]
    assert [response.headers["x-cache"] for response in responses] == ["miss", "miss"]


def test_cache_results_counted(gateway: RunningServer) -> None:
    chat(gateway, tenant="beta", seed=99)
    chat(gateway, tenant="beta", seed=99)
    metrics = httpx.get(f"{gateway.url}/metrics").text
    for result in ("hit", "miss", "store"):
        assert f'slogate_cache_results_total{{model="mock-llm",result="{result}",tenant="beta"}}' in metrics


def test_cache_too_large_not_stored(log_dir: Path, redis_url: str, mock: RunningServer) -> None:
    settings = config(redis_url, mock, cache={"enabled": True, "max_entry_bytes": 64})
    with running_gateway("tiny-cache", log_dir, settings) as tiny:
        assert [chat(tiny).headers["x-cache"] for _ in range(2)] == ["miss", "miss"]
        assert 'result="skip"' in httpx.get(f"{tiny.url}/metrics").text


def test_ratelimit_headers_on_success(gateway: RunningServer) -> None:
    response = chat(gateway, tenant="limited", max_tokens=8)
    assert response.status_code == 200
    assert response.headers["x-ratelimit-limit-requests"] == "600"
    assert response.headers["x-ratelimit-remaining-requests"] == "599"
    assert response.headers["x-ratelimit-reset-requests"].endswith("s")
    assert response.headers["x-ratelimit-limit-tokens"] == "60000"
    assert int(response.headers["x-ratelimit-remaining-tokens"]) < 60000
    assert response.headers["x-ratelimit-reset-tokens"].endswith("s")


def test_ratelimit_headers_on_cache_hit(gateway: RunningServer) -> None:
    chat(gateway, tenant="limited")
    hit = chat(gateway, tenant="limited")
    assert hit.headers["x-cache"] == "hit"
    assert hit.headers["x-ratelimit-remaining-requests"] == "598"


def test_stream_usage_reconciles_tokens(gateway: RunningServer) -> None:
    first = chat(gateway, tenant="limited", stream=True, max_tokens=4000, temperature=0.5)
    assert first.status_code == 200
    reserved_remaining = int(first.headers["x-ratelimit-remaining-tokens"])
    second = chat(gateway, tenant="limited", max_tokens=1, temperature=0.5)
    # The stream reserved about 4000 tokens and used about 15, so the second request sees them back.
    assert int(second.headers["x-ratelimit-remaining-tokens"]) > reserved_remaining + 3900
