"""Objects that live as long as one gateway app: configuration, upstreams, pools, policy and metrics."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import redis.asyncio as redis
from fastapi import Request

from target_service.cache import ResponseCache
from target_service.config import GatewayConfig, RouteTarget, UpstreamConfig
from target_service.lifecycle import Lifecycle
from target_service.metrics import GatewayMetrics
from target_service.providers import Upstream
from target_service.ratelimit import RateLimiter
from target_service.redis_state import RedisGate
from target_service.shedding import LoadShedder
from target_service.tenancy import KeyRing
from target_service.tracing import Tracer


@dataclass
class Gateway:
    """State that the request handlers of one app share, created by the app's lifespan."""

    config: GatewayConfig
    metrics: GatewayMetrics
    upstreams: dict[str, Upstream]
    routes: dict[str, list[RouteTarget]]
    """Each model alias's chain: its upstream, then its fallbacks."""
    session: aiohttp.ClientSession
    redis: redis.Redis
    started_at: int
    keys: KeyRing
    cache: ResponseCache
    limiter: RateLimiter
    shedder: LoadShedder
    lifecycle: Lifecycle
    tracer: Tracer


def build_gateway(
    config: GatewayConfig,
    metrics: GatewayMetrics,
    session: aiohttp.ClientSession,
    redis_client: redis.Redis,
    started_at: int,
    lifecycle: Lifecycle,
    tracer: Tracer,
) -> Gateway:
    """Assemble the per-app state: upstreams, routes, the key ring, and the Redis-backed cache and limits."""
    upstreams = {name: Upstream(name, upstream, metrics) for name, upstream in config.upstreams.items()}
    routes = {alias: config.route_chain(alias) for alias in config.models}
    gate = RedisGate(redis_client, config.redis.timeout_s, metrics)
    longest_request_s = max(
        (
            sum(_longest_call_s(config.upstreams[target.upstream]) for target in chain)
            for chain in routes.values()
        ),
        default=300.0,
    )
    return Gateway(
        config=config,
        metrics=metrics,
        upstreams=upstreams,
        routes=routes,
        session=session,
        redis=redis_client,
        started_at=started_at,
        keys=KeyRing(config),
        cache=ResponseCache(gate, config.cache, metrics),
        limiter=RateLimiter(gate, config.rate_limits, metrics, lease_s=longest_request_s),
        shedder=LoadShedder(config.load_shedding, metrics),
        lifecycle=lifecycle,
        tracer=tracer,
    )


def _longest_call_s(upstream: UpstreamConfig) -> float:
    """Return the longest time a request can spend on ``upstream``: every attempt and backoff."""
    retry = upstream.retry
    return upstream.total_timeout_s * retry.max_attempts + retry.max_backoff_s * (retry.max_attempts - 1)


def gateway_of(request: Request) -> Gateway:
    """Return the Gateway of the app that is handling ``request``."""
    gateway = request.app.state.gateway
    assert isinstance(gateway, Gateway)
    return gateway
