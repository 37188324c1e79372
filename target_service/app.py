"""FastAPI application factory of the gateway. Each app owns its connection pools and metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from fastapi import FastAPI

from target_service.config import GatewayConfig
from target_service.errors import install_error_handlers
from target_service.metrics import GatewayMetrics
from target_service.observability import RequestObserver, log_event
from target_service.redis_state import open_redis
from target_service.routes import router
from target_service.runtime import build_gateway


def create_app(config: GatewayConfig) -> FastAPI:
    """Build a gateway app for ``config``. Its pools open at startup and close at shutdown."""
    metrics = GatewayMetrics()
    app = FastAPI(
        title="slogate gateway",
        lifespan=_lifespan(config, metrics),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(RequestObserver, metrics=metrics)
    return app


def _lifespan(
    config: GatewayConfig, metrics: GatewayMetrics
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        session = open_session(config)
        redis_client = open_redis(config)
        app.state.gateway = build_gateway(config, metrics, session, redis_client, int(time.time()))
        log_event(
            "startup",
            upstreams=sorted(config.upstreams),
            models=sorted(config.models),
            tenants=sorted(config.tenants),
            cache=config.cache.enabled,
            redis_url=redact_url(config.redis.url),
        )
        try:
            yield
        finally:
            await session.close()
            await redis_client.aclose()
            log_event("shutdown")

    return lifespan


def open_session(config: GatewayConfig) -> aiohttp.ClientSession:
    """Open the one pooled HTTP client that every upstream call of the app goes through."""
    total_connections = sum(upstream.max_connections for upstream in config.upstreams.values())
    connector = aiohttp.TCPConnector(limit=total_connections, limit_per_host=0)
    return aiohttp.ClientSession(connector=connector, raise_for_status=False)


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
