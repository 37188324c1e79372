"""Redis killed, restarted or frozen under load: the configured fail mode holds, nothing answers 500."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from harness.stack.process import ManagedProcess
from harness.stack.redis_server import start_redis
from target_service.config import hash_api_key
from tests.integration.servers import RunningServer, running_gateway, running_mock

API_KEY = "sk-test-outage"
REDIS_TIMEOUT_S = 0.3


@dataclass
class Outcome:
    sent: float
    """Seconds since the load started."""
    status: int
    latency_s: float
    limits_checked: bool
    retry_after: str | None


@dataclass
class Stack:
    gateway: RunningServer
    redis: ManagedProcess
    redis_port: int
    log_dir: Path


@pytest.fixture
def mock(tmp_path: Path) -> Iterator[RunningServer]:
    with running_mock("mock", tmp_path, "--tokens-per-s", "0", "--output-tokens", "4") as server:
        yield server


def start_stack(tmp_path: Path, mock: RunningServer, fail_mode: str) -> Iterator[Stack]:
    process, url = start_redis(tmp_path / "redis")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    config: dict[str, Any] = {
        "redis": {"url": url, "timeout_s": REDIS_TIMEOUT_S},
        "upstreams": {"primary": {"base_url": f"{mock.url}/v1"}},
        "models": {"mock-llm": {"upstream": "primary"}},
        "tenants": {
            "ops": {
                "keys": [{"id": "ops-key", "sha256": hash_api_key(API_KEY)}],
                "limits": {"requests_per_minute": 100_000, "concurrency": 1000},
            }
        },
        "cache": {"enabled": True},
        "rate_limits": {"on_redis_error": fail_mode},
    }
    stack = Stack(None, process, port, tmp_path)  # type: ignore[arg-type]
    try:
        with running_gateway(f"gateway-{fail_mode}", tmp_path, config) as gateway:
            stack.gateway = gateway
            yield stack
    finally:
        stack.redis.stop()


@pytest.fixture
def fail_open(tmp_path: Path, mock: RunningServer) -> Iterator[Stack]:
    yield from start_stack(tmp_path, mock, "fail_open")


@pytest.fixture
def fail_closed(tmp_path: Path, mock: RunningServer) -> Iterator[Stack]:
    yield from start_stack(tmp_path, mock, "fail_closed")


async def run_load(
    url: str, rate_per_s: float, duration_s: float, faults: dict[float, Callable[[], None]]
) -> list[Outcome]:
    """Send requests at ``rate_per_s`` for ``duration_s``; run each fault action at its time."""
    outcomes: list[Outcome] = []
    body = {"model": "mock-llm", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}
    headers = {"authorization": f"Bearer {API_KEY}"}
    origin = time.monotonic()

    async def one(session: aiohttp.ClientSession) -> None:
        sent = time.monotonic()
        async with session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as response:
            await response.read()
            outcomes.append(
                Outcome(
                    sent - origin,
                    response.status,
                    time.monotonic() - sent,
                    "x-ratelimit-remaining-requests" in response.headers,
                    response.headers.get("retry-after"),
                )
            )

    async def apply_faults() -> None:
        for at, action in sorted(faults.items()):
            await asyncio.sleep(max(0.0, origin + at - time.monotonic()))
            await asyncio.to_thread(action)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        fault_task = asyncio.create_task(apply_faults())
        tasks = []
        for index in range(int(rate_per_s * duration_s)):
            await asyncio.sleep(max(0.0, origin + index / rate_per_s - time.monotonic()))
            tasks.append(asyncio.create_task(one(session)))
        await asyncio.gather(*tasks, fault_task)
    return sorted(outcomes, key=lambda outcome: outcome.sent)


def kill_and_restart(
    stack: Stack, down_at: float, up_at: float
) -> tuple[dict[float, Callable[[], None]], list[float]]:
    restarted: list[float] = []
    origin = time.monotonic()

    def kill() -> None:
        stack.redis.stop()

    def restart() -> None:
        stack.redis, _ = start_redis(stack.log_dir / "redis", port=stack.redis_port)
        restarted.append(time.monotonic() - origin)

    return {down_at: kill, up_at: restart}, restarted


def test_redis_killed_fail_open_serves_everything(fail_open: Stack) -> None:
    faults, restarted = kill_and_restart(fail_open, down_at=1.5, up_at=3.5)
    outcomes = asyncio.run(run_load(fail_open.gateway.url, 20, 7.0, faults))
    assert {outcome.status for outcome in outcomes} == {200}
    unchecked = [outcome for outcome in outcomes if not outcome.limits_checked]
    assert unchecked, "Redis was down, so some requests must have been admitted unchecked"
    checked_again = [o for o in outcomes if o.limits_checked and o.sent > restarted[0]]
    assert checked_again
    assert checked_again[0].sent - restarted[0] < 5.0
    assert all(o.limits_checked for o in outcomes if o.sent > restarted[0] + 5.0)
    assert max(outcome.latency_s for outcome in outcomes) < 2.0


def test_redis_killed_fail_closed_sheds_with_503(fail_closed: Stack) -> None:
    faults, restarted = kill_and_restart(fail_closed, down_at=1.5, up_at=3.5)
    outcomes = asyncio.run(run_load(fail_closed.gateway.url, 20, 7.0, faults))
    statuses = {outcome.status for outcome in outcomes}
    assert statuses == {200, 503}
    assert all(outcome.retry_after == "1" for outcome in outcomes if outcome.status == 503)
    first_ok_after = next(o for o in outcomes if o.status == 200 and o.sent > restarted[0])
    assert first_ok_after.sent - restarted[0] < 5.0
    assert all(o.status == 200 for o in outcomes if o.sent > restarted[0] + 5.0)


def test_redis_frozen_requests_stay_bounded(fail_open: Stack) -> None:
    """SIGSTOP leaves connections open but unanswered: every Redis call runs into its timeout."""
    faults = {
        1.0: lambda: fail_open.redis.signal(signal.SIGSTOP),
        3.0: lambda: fail_open.redis.signal(signal.SIGCONT),
    }
    outcomes = asyncio.run(run_load(fail_open.gateway.url, 20, 5.0, faults))
    assert {outcome.status for outcome in outcomes} == {200}
    # A request waits at most one Redis timeout per feature (limits, cache lookup, cache store).
    assert max(outcome.latency_s for outcome in outcomes) < 3 * REDIS_TIMEOUT_S + 0.5


def test_readiness_reports_redis_outage(fail_open: Stack, tmp_path: Path, mock: RunningServer) -> None:
    fail_open.redis.stop()
    body = httpx.get(f"{fail_open.gateway.url}/readyz").json()
    assert body["status"] == "degraded"
    assert body["checks"]["redis"].startswith("error:")
    fail_open.redis, _ = start_redis(fail_open.log_dir / "redis", port=fail_open.redis_port)
    assert httpx.get(f"{fail_open.gateway.url}/readyz").json()["status"] == "ready"


def test_readiness_not_ready_when_failing_closed(fail_closed: Stack) -> None:
    fail_closed.redis.stop()
    response = httpx.get(f"{fail_closed.gateway.url}/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "not_ready"
