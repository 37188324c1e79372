"""HTTP endpoints of the gateway: the OpenAI API, health probes and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError

from target_service.completions import create_chat_completion
from target_service.metrics import METRICS_CONTENT_TYPE
from target_service.runtime import gateway_of

router = APIRouter()


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    return await create_chat_completion(request, gateway_of(request))


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    gateway = gateway_of(request)
    models = [
        {"id": alias, "object": "model", "created": gateway.started_at, "owned_by": route.upstream}
        for alias, route in gateway.config.models.items()
    ]
    return {"object": "list", "data": models}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Report readiness. Without Redis the gateway is "degraded" but still ready when limits fail open.

    A draining replica (after SIGTERM) is "draining" (503) at once, without checking anything.

    Taking every replica out of rotation because Redis is down would turn a configured fail-open
    into a full outage, so only a fail-closed gateway reports not ready then.
    """
    gateway = gateway_of(request)
    if gateway.lifecycle.draining:
        return JSONResponse({"status": "draining", "checks": {}}, status_code=503)
    redis_check = await check_redis(gateway.redis, gateway.config.redis.timeout_s)
    upstream_count = len(gateway.upstreams)
    fail_mode = gateway.config.rate_limits.on_redis_error
    if upstream_count == 0 or (redis_check != "ok" and fail_mode == "fail_closed"):
        status, code = "not_ready", 503
    elif redis_check != "ok":
        status, code = "degraded", 200
    else:
        status, code = "ready", 200
    checks = {"redis": redis_check, "upstreams": upstream_count, "on_redis_error": fail_mode}
    return JSONResponse({"status": status, "checks": checks}, status_code=code)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(gateway_of(request).metrics.render(), media_type=METRICS_CONTENT_TYPE)


async def check_redis(client: redis.Redis, timeout_s: float) -> str:
    """Return "ok" when Redis replies to PING within ``timeout_s``, else "error: " and the reason."""
    try:
        async with asyncio.timeout(timeout_s):
            await client.ping()
    except TimeoutError:
        return f"error: no PING reply within {timeout_s:g} s"
    except (RedisError, OSError) as exc:
        return f"error: {type(exc).__name__}: {exc}"
    return "ok"
