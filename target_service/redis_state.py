"""Redis calls on the request path: each with a deadline, and none at all for a moment after a failure.

When Redis is slow or gone, every call fails within ``redis.timeout_s``; after a failure the
gateway stops calling Redis for a short back-off (doubling up to ``MAX_BACKOFF_S``), so
requests take the configured fail mode at once instead of each waiting out a timeout. The
first call after the back-off probes Redis, and recovery needs no restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from target_service.config import GatewayConfig
from target_service.metrics import GatewayMetrics
from target_service.observability import log_event

T = TypeVar("T")

MIN_BACKOFF_S = 0.25
MAX_BACKOFF_S = 2.0
POOL_SIZE = 64


class RedisUnavailable(Exception):
    """Redis did not answer in time, refused the connection, or is in its back-off after a failure."""


def open_redis(config: GatewayConfig) -> redis.Redis:
    """Create the Redis client. It connects on first use, so the gateway starts while Redis is down.

    The pool blocks for at most ``timeout_s`` when all its connections are busy, so a burst
    cannot queue requests behind Redis without bound.
    """
    timeout_s = config.redis.timeout_s
    pool = redis.BlockingConnectionPool.from_url(
        config.redis.url,
        max_connections=POOL_SIZE,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        # No retries, because each caller on the request path decides what a Redis failure means.
        retry=Retry(NoBackoff(), 0),
    )
    return redis.Redis(connection_pool=pool)


class RedisGate:
    """Runs the request path's Redis operations with a deadline and a back-off after failures."""

    def __init__(self, client: redis.Redis, timeout_s: float, metrics: GatewayMetrics) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.metrics = metrics
        self._down_until = 0.0
        self._backoff_s = MIN_BACKOFF_S
        self._down = False

    @property
    def is_down(self) -> bool:
        return self._down

    async def run(self, feature: str, operation: Callable[[redis.Redis], Awaitable[T]]) -> T:
        """Await ``operation(client)``; raise RedisUnavailable on any Redis failure or in the back-off."""
        if self._down and time.monotonic() < self._down_until:
            self.metrics.redis_errors.labels(feature=feature, reason="backoff").inc()
            raise RedisUnavailable("Redis failed recently; skipping it during the back-off")
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await operation(self.client)
        except (RedisError, OSError, TimeoutError) as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else "error"
            self.metrics.redis_errors.labels(feature=feature, reason=reason).inc()
            self._mark_down(feature, exc)
            raise RedisUnavailable(f"{type(exc).__name__}: {exc}") from exc
        self._mark_up()
        return result

    def _mark_down(self, feature: str, exc: BaseException) -> None:
        if self._down:
            self._backoff_s = min(self._backoff_s * 2, MAX_BACKOFF_S)
        else:
            self._down = True
            self._backoff_s = MIN_BACKOFF_S
            log_event(
                "redis_unavailable", logging.WARNING, feature=feature, error=f"{type(exc).__name__}: {exc}"
            )
        self._down_until = time.monotonic() + self._backoff_s

    def _mark_up(self) -> None:
        if self._down:
            self._down = False
            self._backoff_s = MIN_BACKOFF_S
            log_event("redis_recovered")
