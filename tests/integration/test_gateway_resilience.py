"""Retries, circuit breakers, fallbacks, timeouts and load shedding of a real gateway process."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.gateway_helpers import (
    auth_headers,
    chat,
    gateway_config,
    log_events,
    metric_samples,
    mock_stats,
    request_log,
    reset_mock,
    set_mock,
    sse_data,
    upstream,
)
from tests.integration.servers import RunningServer, running_gateway, running_mock

BREAKER = {"enabled": True, "min_calls": 4, "failure_ratio": 0.5, "window_s": 30, "cooldown_s": 1.0}


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.fixture
def start_mock(tmp_path: Path, servers: ExitStack) -> Callable[..., RunningServer]:
    def start(name: str, *flags: str) -> RunningServer:
        return servers.enter_context(running_mock(name, tmp_path, "--output-tokens", "8", *flags))

    return start


@pytest.fixture
def start_gateway(tmp_path: Path, servers: ExitStack, redis_url: str) -> Callable[..., RunningServer]:
    def start(upstreams: dict[str, Any], **sections: Any) -> RunningServer:
        config = gateway_config(redis_url, upstreams, **sections)
        return servers.enter_context(running_gateway("gateway", tmp_path, config))

    return start


async def send_concurrently(gateway: RunningServer, count: int, stream: bool = False) -> list[int]:
    """Send ``count`` requests at once, each with its own x-request-id; return their statuses."""
    body = {"model": "mock-llm", "messages": [{"role": "user", "content": "hi"}], "stream": stream}

    async def one(session: aiohttp.ClientSession, position: int) -> int:
        headers = {**auth_headers(), "x-request-id": f"concurrent-{position}"}
        async with session.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers) as response:
            await response.read()
            return response.status

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        return list(await asyncio.gather(*(one(session, position) for position in range(count))))


def breaker_gauge(gateway: RunningServer, name: str) -> float:
    return metric_samples(gateway)[("slogate_breaker_state", (("upstream", name),))]


def test_breaker_opens_probes_and_closes(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    mock = start_mock("primary", "--error-rate", "1")
    gateway = start_gateway({"primary": upstream(mock, breaker=BREAKER)})
    assert [chat(gateway).status_code for _ in range(4)] == [502] * 4
    assert breaker_gauge(gateway, "primary") == 2

    rejected = chat(gateway)
    assert rejected.status_code == 503
    assert rejected.json()["error"]["code"] == "upstream_unavailable"
    assert int(rejected.headers["retry-after"]) >= 1
    assert mock_stats(mock)["requests"] == 4

    set_mock(mock, error_rate=0.0)
    time.sleep(1.1)
    assert chat(gateway).status_code == 200
    assert breaker_gauge(gateway, "primary") == 0
    transitions = [
        (e["from_state"], e["to_state"]) for e in log_events(gateway.process.log_path, "breaker_transition")
    ]
    assert transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_breaker_reopens_on_failed_probe(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    mock = start_mock("primary", "--error-rate", "1")
    gateway = start_gateway({"primary": upstream(mock, breaker=BREAKER)})
    for _ in range(4):
        chat(gateway)
    time.sleep(1.1)
    assert chat(gateway).status_code == 502
    assert breaker_gauge(gateway, "primary") == 2
    assert chat(gateway).status_code == 503


@pytest.mark.parametrize("probes", [1, 3])
def test_half_open_admits_only_probes(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer], probes: int
) -> None:
    mock = start_mock("primary", "--error-rate", "1")
    breaker = {**BREAKER, "half_open_probes": probes}
    gateway = start_gateway({"primary": upstream(mock, breaker=breaker)})
    for _ in range(4):
        chat(gateway)
    set_mock(mock, error_rate=0.0, ttft_ms=800)
    reset_mock(mock)
    time.sleep(1.1)

    started = time.monotonic()
    statuses = asyncio.run(send_concurrently(gateway, 50))
    assert mock_stats(mock)["requests"] == probes
    assert statuses.count(200) == probes
    assert statuses.count(503) == 50 - probes
    assert time.monotonic() - started < 5.0


def test_fallback_serves_when_primary_fails(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    primary = start_mock("primary", "--error-rate", "1")
    fallback = start_mock("fallback")
    gateway = start_gateway({"primary": upstream(primary), "fallback": upstream(fallback)})
    response = chat(gateway, headers={"x-request-id": "fallback-1"})
    assert response.status_code == 200
    assert response.headers["x-upstream"] == "fallback"
    entry = request_log(gateway, "fallback-1")
    assert entry["upstream"] == "fallback"
    assert entry["attempts"] == 2
    assert (
        metric_samples(gateway)[
            ("slogate_fallbacks_total", (("model", "mock-llm"), ("upstream", "fallback")))
        ]
        == 1
    )


def test_fallback_after_open_breaker_skips_primary(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    primary = start_mock("primary", "--error-rate", "1")
    fallback = start_mock("fallback")
    gateway = start_gateway({"primary": upstream(primary, breaker=BREAKER), "fallback": upstream(fallback)})
    statuses = [chat(gateway).status_code for _ in range(10)]
    assert statuses == [200] * 10
    assert mock_stats(primary)["requests"] == 4


def test_client_error_not_sent_to_fallback(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    primary = start_mock("primary")
    fallback = start_mock("fallback")
    gateway = start_gateway({"primary": upstream(primary), "fallback": upstream(fallback)})
    assert chat(gateway, max_tokens=0).status_code == 400
    assert mock_stats(fallback)["requests"] == 0


def retry_settings(**overrides: Any) -> dict[str, Any]:
    settings = {
        "max_attempts": 3,
        "base_backoff_s": 0.2,
        "max_backoff_s": 2.0,
        "budget_ratio": 0.2,
        "budget_min_retries": 0,
        "budget_window_s": 30,
    }
    return {**settings, **overrides}


def test_retries_jittered_and_capped_by_budget(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    mock = start_mock("primary", "--error-rate", "1", "--error-status", "503")
    gateway = start_gateway({"primary": upstream(mock, retry=retry_settings())})
    statuses = asyncio.run(send_concurrently(gateway, 100))
    assert statuses == [502] * 100

    by_request: dict[str, list[float]] = defaultdict(list)
    for arrival in mock_stats(mock)["arrivals"]:
        by_request[arrival["request_id"]].append(arrival["at"])
    retries = sum(len(times) - 1 for times in by_request.values())
    first_retry_delays = [sorted(times)[1] - min(times) for times in by_request.values() if len(times) > 1]
    assert len(by_request) == 100
    assert 5 <= retries <= 20
    assert max(first_retry_delays) <= 0.2 + 0.3  # full jitter up to the base, plus scheduling slack
    assert statistics.pstdev(first_retry_delays) > 0.02
    assert max(first_retry_delays) - min(first_retry_delays) > 0.05
    samples = metric_samples(gateway)
    assert (
        samples[("slogate_upstream_retries_total", (("error_class", "http_5xx"), ("upstream", "primary")))]
        == retries
    )
    assert samples[("slogate_retry_budget_exhausted_total", (("upstream", "primary"),))] > 0


def test_retry_waits_for_retry_after(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    mock = start_mock("primary", "--error-rate", "1", "--error-status", "429", "--retry-after-s", "1")
    settings = retry_settings(max_attempts=2, base_backoff_s=0.01, budget_min_retries=10)
    gateway = start_gateway({"primary": upstream(mock, retry=settings)})
    response = chat(gateway)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    first, second = (arrival["at"] for arrival in mock_stats(mock)["arrivals"])
    assert second - first >= 1.0


def test_long_retry_after_not_waited(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    mock = start_mock("primary", "--error-rate", "1", "--error-status", "503", "--retry-after-s", "30")
    gateway = start_gateway({"primary": upstream(mock, retry=retry_settings(budget_min_retries=10))})
    started = time.monotonic()
    assert chat(gateway).status_code == 502
    assert time.monotonic() - started < 2.0
    assert mock_stats(mock)["requests"] == 1


def test_internal_error_not_retried(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    mock = start_mock("primary", "--error-rate", "1", "--error-status", "500")
    gateway = start_gateway({"primary": upstream(mock, retry=retry_settings(budget_min_retries=10))})
    assert chat(gateway).status_code == 502
    assert mock_stats(mock)["requests"] == 1


def test_first_token_timeout_falls_back_and_cancels(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    slow = start_mock("slow", "--ttft-ms", "3000")
    fallback = start_mock("fallback")
    gateway = start_gateway(
        {"slow": upstream(slow, first_token_timeout_s=0.3), "fallback": upstream(fallback)}
    )
    started = time.monotonic()
    response = chat(gateway, stream=True)
    assert response.status_code == 200
    assert response.headers["x-upstream"] == "fallback"
    assert sse_data(response.text)[-1] == "[DONE]"
    assert time.monotonic() - started < 2.0
    deadline = time.monotonic() + 1.0
    while not mock_stats(slow)["disconnects"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mock_stats(slow)["disconnects"] == 1
    assert mock_stats(slow)["in_flight"] == 0


def test_first_token_timeout_retried(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    slow = start_mock("slow", "--ttft-ms", "3000")
    settings = retry_settings(max_attempts=2, base_backoff_s=0.01, budget_min_retries=10)
    gateway = start_gateway({"slow": upstream(slow, first_token_timeout_s=0.3, retry=settings)})
    response = chat(gateway, stream=True)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert mock_stats(slow)["requests"] == 2


def test_idle_timeout_ends_stream_with_error(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    mock = start_mock("primary", "--stall-after-tokens", "3", "--stall-ms", "3000")
    gateway = start_gateway({"primary": upstream(mock, idle_timeout_s=0.3)})
    started = time.monotonic()
    response = chat(gateway, stream=True)
    events = sse_data(response.text)
    assert response.status_code == 200
    assert time.monotonic() - started < 2.0
    assert events[-2].startswith('{"error"')
    assert '"upstream_timeout"' in events[-2]
    assert events[-1] == "[DONE]"


async def hold_requests(gateway: RunningServer, tenants: list[str]) -> list[tuple[int, float, str | None]]:
    """Send one request per entry of ``tenants`` at once; return status, seconds taken and Retry-After."""
    body = {"model": "mock-llm", "messages": [{"role": "user", "content": "hi"}]}

    async def one(session: aiohttp.ClientSession, tenant: str) -> tuple[int, float, str | None]:
        started = time.monotonic()
        url = f"{gateway.url}/v1/chat/completions"
        async with session.post(url, json=body, headers=auth_headers(tenant)) as response:
            await response.read()
            return response.status, time.monotonic() - started, response.headers.get("retry-after")

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        return list(await asyncio.gather(*(one(session, tenant) for tenant in tenants)))


def test_load_shedding_global_limit(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    mock = start_mock("primary", "--ttft-ms", "1500")
    gateway = start_gateway(
        {"primary": upstream(mock)}, load_shedding={"max_in_flight": 2, "retry_after_s": 2}
    )
    results = asyncio.run(hold_requests(gateway, ["team-a"] * 5))
    shed = [result for result in results if result[0] == 503]
    assert sorted(status for status, _, _ in results) == [200, 200, 503, 503, 503]
    assert all(seconds < 0.5 for _, seconds, _ in shed)
    assert all(retry_after == "2" for _, _, retry_after in shed)
    assert (
        metric_samples(gateway)[("slogate_load_shed_total", (("scope", "global"), ("tenant", "none")))] == 3
    )


def test_load_shedding_per_tenant(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    mock = start_mock("primary", "--ttft-ms", "1000")
    gateway = start_gateway({"primary": upstream(mock)}, load_shedding={"max_in_flight_per_tenant": 1})
    results = asyncio.run(hold_requests(gateway, ["team-a", "team-a", "team-b"]))
    assert sorted(status for status, _, _ in results) == [200, 200, 503]
    assert chat(gateway).status_code == 200
