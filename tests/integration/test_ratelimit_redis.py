"""The rate limiter's atomic scripts against a real Redis: pass, reject and the edges."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from target_service.config import GatewayConfig, ModelLimits, TenantLimits
from target_service.metrics import GatewayMetrics
from target_service.ratelimit import RateLimiter, RateLimitError
from target_service.redis_state import RedisGate, open_redis
from target_service.tenancy import Principal


def config(redis_url: str, window_s: float = 60.0) -> GatewayConfig:
    return GatewayConfig(
        redis={"url": redis_url, "timeout_s": 1.0},
        upstreams={"primary": {"base_url": "http://127.0.0.1:9/v1"}},
        models={"m": {"upstream": "primary"}},
        auth={"allow_anonymous": True},
        rate_limits={"window_s": window_s},
    )


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    connection = open_redis(config(redis_url))
    await connection.flushall()
    yield connection
    await connection.aclose()


def make_limiter(client: redis.Redis, redis_url: str, window_s: float = 60.0) -> RateLimiter:
    settings = config(redis_url, window_s)
    gate = RedisGate(client, settings.redis.timeout_s, GatewayMetrics())
    return RateLimiter(gate, settings.rate_limits, GatewayMetrics(), lease_s=5)


def principal(**limits: object) -> Principal:
    return Principal("acme", "acme-key", TenantLimits.model_validate(limits))


async def test_requests_under_limit_admitted(client: redis.Redis, redis_url: str) -> None:
    limiter = make_limiter(client, redis_url)
    who = principal(requests_per_minute=3)
    remaining = [
        (await limiter.admit(who, "m", 1)).headers["x-ratelimit-remaining-requests"] for _ in range(3)
    ]
    assert remaining == ["2", "1", "0"]


async def test_request_over_limit_rejected(client: redis.Redis, redis_url: str) -> None:
    limiter = make_limiter(client, redis_url)
    who = principal(requests_per_minute=2)
    for _ in range(2):
        await limiter.admit(who, "m", 1)
    with pytest.raises(RateLimitError) as caught:
        await limiter.admit(who, "m", 1)
    error = caught.value
    assert error.status == 429
    assert error.code == "rate_limit_exceeded"
    assert 59 <= int(error.headers["retry-after"]) <= 60
    assert error.headers["x-ratelimit-remaining-requests"] == "0"


async def test_concurrent_burst_admits_exactly_limit(client: redis.Redis, redis_url: str) -> None:
    limiter = make_limiter(client, redis_url)
    who = principal(requests_per_minute=50)

    async def attempt() -> bool:
        try:
            await limiter.admit(who, "m", 1)
        except RateLimitError:
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(200)))
    assert sum(results) == 50


async def test_retry_after_is_accurate(client: redis.Redis, redis_url: str) -> None:
    limiter = make_limiter(client, redis_url, window_s=1.5)
    who = principal(requests_per_minute=40)  # 1 per 1.5 s window
    await limiter.admit(who, "m", 1)
    with pytest.raises(RateLimitError) as caught:
        await limiter.admit(who, "m", 1)
    wait_ms = int(caught.value.headers["retry-after-ms"])
    assert 1000 < wait_ms <= 1500
    await asyncio.sleep(wait_ms / 1000 + 0.02)
    await limiter.admit(who, "m", 1)


async def test_sliding_window_has_no_boundary_burst(client: redis.Redis, redis_url: str) -> None:
    """A fixed window admits a full burst just before and just after its boundary; a sliding one does not."""
    limiter = make_limiter(client, redis_url, window_s=1.0)
    who = principal(requests_per_minute=300)  # 5 per 1 s window
    admitted: list[float] = []
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        try:
            await limiter.admit(who, "m", 1)
            admitted.append(time.monotonic())
        except RateLimitError:
            pass
        await asyncio.sleep(0.01)
    most_in_any_window = max(
        sum(1 for other in admitted if start <= other < start + 0.98) for start in admitted
    )  # 20 ms below the window for the clock difference between this process and Redis
    assert most_in_any_window <= 5
    assert len(admitted) >= 12  # about 5 per second over 3 s: the limit still admits


async def test_tokens_reserved_then_reconciled(client: redis.Redis, redis_url: str) -> None:
    limiter = make_limiter(client, redis_url)
    who = principal(tokens_per_minute=1000)
    first = await limiter.admit(who, "m", 600)
    with pytest.raises(RateLimitError) as caught:
        await limiter.admit(who, "m", 600)
    assert caught.value.check.name == "tokens_per_minute"
    await limiter.settle(first, used_tokens=100)
    admitted = await limiter.admit(who, "m", 600)
    assert admitted.headers["x-ratelimit-remaining-tokens"] == "300"


async def test_reservation_kept_when_usage_unknown(client: redis.Redis, redis_url: str) -> None:
    limiter = make_limiter(client, redis_url)
    who = principal(tokens_per_minute=1000)
    first = await limiter.admit(who, "m", 600)
    await limiter.settle(first, used_tokens=None)
    with pytest.raises(RateLimitError):
        await limiter.admit(who, "m", 600)


async def test_oversized_reservation_is_invalid(client: redis.Redis, redis_url: str) -> None:
    limiter = make_limiter(client, redis_url)
    with pytest.raises(Exception, match="more than the tokens per minute limit of 100") as caught:
        await limiter.admit(principal(tokens_per_minute=100), "m", 500)
    assert getattr(caught.value, "status", None) == 400


async def test_model_limit_separate_from_key(client: redis.Redis, redis_url: str) -> None:
    limiter = make_limiter(client, redis_url)
    who = principal(requests_per_minute=10, models={"m": ModelLimits(requests_per_minute=1)})
    await limiter.admit(who, "m", 1)
    with pytest.raises(RateLimitError) as caught:
        await limiter.admit(who, "m", 1)
    assert caught.value.check.name == "model_requests_per_minute"
    await limiter.admit(who, "other", 1)


async def test_concurrency_cap_frees_on_settle(client: redis.Redis, redis_url: str) -> None:
    limiter = make_limiter(client, redis_url)
    who = principal(concurrency=2)
    first = await limiter.admit(who, "m", 1)
    await limiter.admit(who, "m", 1)
    with pytest.raises(RateLimitError) as caught:
        await limiter.admit(who, "m", 1)
    assert caught.value.check.name == "concurrency"
    await limiter.settle(first, used_tokens=1)
    await limiter.admit(who, "m", 1)


async def test_daily_budget_retry_after_midnight(client: redis.Redis, redis_url: str) -> None:
    limiter = make_limiter(client, redis_url)
    who = principal(daily_tokens=1000)
    await limiter.admit(who, "m", 900)
    with pytest.raises(RateLimitError) as caught:
        await limiter.admit(who, "m", 200)
    seconds_to_midnight = 86400 - int(time.time()) % 86400
    assert abs(int(caught.value.headers["retry-after"]) - seconds_to_midnight) <= 2


async def test_rejection_consumes_nothing(client: redis.Redis, redis_url: str) -> None:
    limiter = make_limiter(client, redis_url)
    who = principal(requests_per_minute=5, tokens_per_minute=100)
    with pytest.raises(RateLimitError):
        await limiter.admit(who, "m", 90)
        await limiter.admit(who, "m", 90)
    admitted = await limiter.admit(who, "m", 10)
    assert admitted.headers["x-ratelimit-remaining-requests"] == "3"
    assert admitted.headers["x-ratelimit-remaining-tokens"] == "0"


async def test_every_counter_expires(client: redis.Redis, redis_url: str) -> None:
    limiter = make_limiter(client, redis_url)
    who = principal(
        requests_per_minute=5, tokens_per_minute=100, concurrency=3, daily_tokens=1000,
        models={"m": ModelLimits(requests_per_minute=5, tokens_per_minute=100)},
    )  # fmt: skip
    admission = await limiter.admit(who, "m", 10)
    await limiter.settle(admission, used_tokens=5)
    await limiter.admit(who, "m", 10)
    keys = [key async for key in client.scan_iter("slogate:*")]
    assert len(keys) >= 7
    ttls = {key: await client.pttl(key) for key in keys}
    assert [key for key, ttl in ttls.items() if ttl <= 0] == []
