"""``POST /v1/chat/completions``: shed, authenticate, apply limits and the cache, route, and respond."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from contextlib import suppress
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive

from target_service.cache import completion_chunks
from target_service.config import RouteTarget
from target_service.dispatch import Dispatcher
from target_service.errors import InvalidRequestError, ModelNotFoundError, UpstreamError, shutting_down_error
from target_service.exchange import ClientDisconnected, Exchange
from target_service.lifecycle import Lifecycle
from target_service.observability import RequestRecord, request_record, truncate_model
from target_service.ratelimit import reserve_tokens
from target_service.relay import SSE_HEADERS, StreamRelay, stream_response
from target_service.runtime import Gateway
from target_service.streaming import DONE_EVENT, encode_json_event

T = TypeVar("T")

CLIENT_CLOSED_REQUEST = 499
"""Status logged when the client disconnected before the response (nginx's convention)."""


async def create_chat_completion(request: Request, gateway: Gateway) -> Response:
    """Serve one chat completion request: from the cache, or from the upstreams of its model."""
    record = request_record(request)
    record.on_finish.append(gateway.shedder.admit())
    principal = gateway.keys.authenticate(request.headers)
    record.tenant, record.key_id = principal.tenant, principal.key_id
    record.on_finish.append(gateway.shedder.admit_tenant(principal.tenant))
    body = parse_body(await request.body())
    alias = body["model"]
    record.model = truncate_model(alias)
    record.stream = body.get("stream") is True
    chain = gateway.routes.get(alias)
    if chain is None:
        raise ModelNotFoundError(alias)
    record.model_configured = True
    reserved = reserve_tokens(body, gateway.config.rate_limits.completion_token_estimate)
    admission = await gateway.limiter.admit(principal, alias, reserved)
    record.response_headers.update(admission.headers)
    plan = gateway.cache.plan(principal.tenant, alias, body, request.headers)
    exchange = Exchange(gateway, record, principal, alias, body, admission, plan)
    try:
        cached = await look_up(exchange)
        if cached is not None:
            await exchange.finish(0)
            return replay(cached, record, client_wants_usage=exchange.client_wants_usage)
        return await forward(request, exchange, chain)
    except BaseException:
        await exchange.finish(0 if not exchange.record.stream else None)
        raise


async def look_up(exchange: Exchange) -> dict[str, Any] | None:
    """Return the cached completion on a hit; set x-cache and count the outcome either way."""
    plan, cache, record = exchange.plan, exchange.gateway.cache, exchange.record
    if not plan.result:
        return None
    cached = None
    result = plan.result
    if plan.lookup:
        cached = await cache.lookup(plan)
        result = "hit" if cached is not None else ("miss" if not cache.gate.is_down else "skip")
    record.cache = {"hit": "hit", "miss": "miss"}.get(result, "bypass")
    record.response_headers["x-cache"] = record.cache
    cache.count(exchange.principal.tenant, exchange.alias, result)
    return cached


def replay(completion: dict[str, Any], record: RequestRecord, client_wants_usage: bool) -> Response:
    """Answer from the cache: the completion as JSON, or replayed as SSE for a streaming request."""
    if not record.stream:
        return Response(json.dumps(completion).encode(), media_type="application/json")
    chunks = completion_chunks(completion, include_usage=client_wants_usage)

    async def events() -> AsyncIterator[bytes]:
        record.mark_first_token()
        for chunk in chunks:
            yield encode_json_event(chunk)
        yield DONE_EVENT

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


async def forward(request: Request, exchange: Exchange, chain: list[RouteTarget]) -> Response:
    """Get the response from the model's chain of upstreams, unless the client leaves first."""
    record = exchange.record
    dispatcher = Dispatcher(exchange, chain)
    try:
        outcome = await until_disconnect(request.receive, dispatcher.run(), exchange.gateway.lifecycle)
    except UpstreamError as exc:
        record.error_class = exc.error_class
        raise
    except ClientDisconnected:
        await exchange.finish(None)
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    if isinstance(outcome, StreamRelay):
        return stream_response(outcome)
    return outcome


def parse_body(raw: bytes) -> dict[str, Any]:
    """Parse and minimally validate a chat completion body, keeping unknown fields."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequestError("'model' is required and must be a non-empty string.", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("'messages' is required and must be a non-empty array.", param="messages")
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise InvalidRequestError("'stream' must be a boolean.", param="stream")
    if body.get("stream_options") is not None and not isinstance(body["stream_options"], dict):
        raise InvalidRequestError("'stream_options' must be an object.", param="stream_options")
    return body


async def until_disconnect(receive: Receive, work: Awaitable[T], lifecycle: Lifecycle) -> T:
    """Await ``work``, but cancel it if the client disconnects or the drain time runs out first.

    Raises ClientDisconnected, or a 503 ``server_shutting_down`` for the drain. Call this only
    after the request body was read, because it consumes ASGI receive messages.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))

    def cancel() -> None:
        task.cancel()

    unregister = lifecycle.on_expire(cancel)
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        unregister()
        watcher.cancel()
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        if lifecycle.expired:
            raise shutting_down_error()
        raise ClientDisconnected()
    return task.result()


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
