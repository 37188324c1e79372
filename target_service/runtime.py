"""Objects that live as long as one gateway app: configuration, upstreams, connection pools and metrics."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import redis.asyncio as redis
from fastapi import Request

from target_service.config import GatewayConfig
from target_service.metrics import GatewayMetrics
from target_service.providers import Upstream


@dataclass
class Gateway:
    """State that the request handlers of one app share, created by the app's lifespan."""

    config: GatewayConfig
    metrics: GatewayMetrics
    upstreams: dict[str, Upstream]
    session: aiohttp.ClientSession
    redis: redis.Redis
    started_at: int


def gateway_of(request: Request) -> Gateway:
    """Return the Gateway of the app that is handling ``request``."""
    gateway = request.app.state.gateway
    assert isinstance(gateway, Gateway)
    return gateway
