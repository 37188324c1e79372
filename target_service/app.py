"""FastAPI application factory of the gateway. Each app owns its connection pools and metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from fastapi import FastAPI

from target_service.config import GatewayConfig
from target_service.errors import install_error_handlers
from target_service.lifecycle import Lifecycle
from target_service.metrics import GatewayMetrics
from target_service.observability import RequestObserver, log_event
from target_service.redis_state import open_redis
from target_service.routes import router
from target_service.runtime import build_gateway
from target_service.tracing import Tracer, build_tracer


def create_app(config: GatewayConfig, tracer_provider: Any | None = None) -> FastAPI:
    """Build a gateway app for ``config``. Its pools open at startup and close at shutdown.

    ``tracer_provider`` replaces the OpenTelemetry TracerProvider built from OTEL_* variables
    when ``otel.enabled`` is set. Raises TracingSetupError when tracing cannot be set up.
    """
    metrics = GatewayMetrics()
    lifecycle = Lifecycle()
    tracer = build_tracer(config, tracer_provider)
    app = FastAPI(
        title="slogate gateway",
        lifespan=_lifespan(config, metrics, lifecycle, tracer),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.metrics = metrics
    app.state.lifecycle = lifecycle
    app.include_router(router)
    install_error_handlers(app)
    app.add_middleware(RequestObserver, metrics=metrics, tracer=tracer, lifecycle=lifecycle)
    return app


def _lifespan(
    config: GatewayConfig, metrics: GatewayMetrics, lifecycle: Lifecycle, tracer: Tracer
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        session = open_session(config)
        redis_client = open_redis(config)
        app.state.gateway = build_gateway(
            config, metrics, session, redis_client, int(time.time()), lifecycle, tracer
        )
        log_event(
            "startup",
            upstreams=sorted(config.upstreams),
            models=sorted(config.models),
            tenants=sorted(config.tenants),
            cache=config.cache.enabled,
            redis_url=redact_url(config.redis.url),
            otel=config.otel.enabled,
        )
        try:
            yield
        finally:
            await session.close()
            await redis_client.aclose()
            tracer.shutdown()
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
