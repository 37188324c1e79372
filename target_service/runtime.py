"""Objects that live as long as one gateway app: configuration, upstreams, pools, policy and metrics."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import redis.asyncio as redis
from fastapi import Request

from target_service.cache import ResponseCache
from target_service.config import GatewayConfig
from target_service.metrics import GatewayMetrics
from target_service.providers import Upstream
from target_service.ratelimit import RateLimiter
from target_service.redis_state import RedisGate
from target_service.tenancy import KeyRing


@dataclass
class Gateway:
    """State that the request handlers of one app share, created by the app's lifespan."""

    config: GatewayConfig
    metrics: GatewayMetrics
    upstreams: dict[str, Upstream]
    session: aiohttp.ClientSession
    redis: redis.Redis
    started_at: int
    keys: KeyRing
    cache: ResponseCache
    limiter: RateLimiter


def build_gateway(
    config: GatewayConfig,
    metrics: GatewayMetrics,
    session: aiohttp.ClientSession,
    redis_client: redis.Redis,
    started_at: int,
) -> Gateway:
    """Assemble the per-app state: upstreams, the key ring, and the Redis-backed cache and limits."""
    upstreams = {name: Upstream(name, upstream) for name, upstream in config.upstreams.items()}
    gate = RedisGate(redis_client, config.redis.timeout_s, metrics)
    longest_call_s = max((upstream.total_timeout_s for upstream in config.upstreams.values()), default=300.0)
    return Gateway(
        config=config,
        metrics=metrics,
        upstreams=upstreams,
        session=session,
        redis=redis_client,
        started_at=started_at,
        keys=KeyRing(config),
        cache=ResponseCache(gate, config.cache, metrics),
        limiter=RateLimiter(gate, config.rate_limits, metrics, lease_s=longest_call_s),
    )


def gateway_of(request: Request) -> Gateway:
    """Return the Gateway of the app that is handling ``request``."""
    gateway = request.app.state.gateway
    assert isinstance(gateway, Gateway)
    return gateway
