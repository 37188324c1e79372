"""``POST /v1/chat/completions``: authenticate, apply limits and the cache, route, and relay the response."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from target_service.cache import CachePlan, CompletionAssembler, complete_completion, completion_chunks
from target_service.errors import INTERNAL_ERROR_BODY, InvalidRequestError, ModelNotFoundError, UpstreamError
from target_service.observability import RequestRecord, logger, request_record, truncate_model
from target_service.providers import Upstream, UpstreamCall
from target_service.ratelimit import Admission, reserve_tokens
from target_service.runtime import Gateway
from target_service.streaming import DONE_DATA, DONE_EVENT, SSEDecoder, SSEProtocolError, encode_json_event
from target_service.tenancy import Principal

T = TypeVar("T")

CLIENT_CLOSED_REQUEST = 499
"""Status logged when the client disconnected before the response (nginx's convention)."""

_CONTENT_DELTA_KEYS = ("content", "reasoning_content", "reasoning", "tool_calls")
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_SSE_HEADERS = {"cache-control": "no-cache"}


class ClientDisconnected(Exception):
    """The client closed the connection before the response started."""


@dataclass
class Exchange:
    """One admitted request: its limits to settle and its cache entry to store when it ends."""

    gateway: Gateway
    record: RequestRecord
    principal: Principal
    alias: str
    body: dict[str, Any]
    admission: Admission
    plan: CachePlan
    finished: bool = field(default=False)

    async def finish(self, used_tokens: int | None, completion: dict[str, Any] | None = None) -> None:
        """Settle the token reservation, free the concurrency slot and store a complete response, once."""
        if self.finished:
            return
        self.finished = True
        await self.gateway.limiter.settle(self.admission, used_tokens)
        if completion is not None and self.plan.store:
            result = await self.gateway.cache.store(self.plan, completion)
            self.gateway.cache.count(self.principal.tenant, self.alias, result)

    def used_tokens(self) -> int | None:
        """Return the tokens the upstream reported, or None when it reported no usage."""
        if self.record.prompt_tokens is None and self.record.completion_tokens is None:
            return None
        return (self.record.prompt_tokens or 0) + (self.record.completion_tokens or 0)


async def create_chat_completion(request: Request, gateway: Gateway) -> Response:
    """Serve one chat completion request: from the cache, or from the upstream of its model."""
    record = request_record(request)
    principal = gateway.keys.authenticate(request.headers)
    record.tenant, record.key_id = principal.tenant, principal.key_id
    body = parse_body(await request.body())
    alias = body["model"]
    record.model = truncate_model(alias)
    record.stream = body.get("stream") is True
    route = gateway.config.models.get(alias)
    if route is None:
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
            return replay(cached, record, client_wants_usage=_wants_usage(body))
        upstream = gateway.upstreams[route.upstream]
        record.upstream = upstream.name
        return await forward(request, exchange, upstream, gateway.config.upstream_model(alias))
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

    return StreamingResponse(events(), media_type="text/event-stream", headers=_SSE_HEADERS)


async def forward(request: Request, exchange: Exchange, upstream: Upstream, upstream_model: str) -> Response:
    record = exchange.record
    payload = upstream_payload(exchange.body, upstream_model)
    try:
        call = await until_disconnect(
            request.receive, upstream.open_chat(exchange.gateway.session, payload, record.request_id)
        )
        if record.stream:
            return stream_response(call, exchange, client_wants_usage=_wants_usage(exchange.body))
        try:
            return await until_disconnect(request.receive, read_completion(call, exchange))
        finally:
            call.close(abort=True)  # a no-op unless the read was cancelled before it started
    except UpstreamError as exc:
        record.error_class = exc.error_class
        raise
    except ClientDisconnected:
        await exchange.finish(None)
        return Response(status_code=CLIENT_CLOSED_REQUEST)


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


def upstream_payload(body: dict[str, Any], upstream_model: str) -> bytes:
    """Return the JSON sent upstream: the client's body with the upstream model name.

    Streams always ask for usage, so the gateway can count tokens whether or not the client asked.
    """
    payload = {**body, "model": upstream_model}
    if body.get("stream") is True:
        payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


async def until_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work``, but cancel it and raise ClientDisconnected if the client disconnects first.

    Call this only after the request body was read, because it consumes ASGI receive messages.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise ClientDisconnected()
    return task.result()


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def read_completion(call: UpstreamCall, exchange: Exchange) -> Response:
    """Read a non-streamed completion, record its usage, settle limits, store it, and return it unchanged."""
    record = exchange.record
    try:
        raw = await call.response.read()
    except BaseException as exc:
        call.close(abort=True)
        if isinstance(exc, TimeoutError | aiohttp.ClientError):
            raise _read_failure(call.upstream, record.request_id, exc) from exc
        raise
    call.close()
    try:
        completion = json.loads(raw)
    except ValueError:
        raise call.upstream.failure(
            "stream", record.request_id, "response body is not valid JSON", 502
        ) from None
    if isinstance(completion, dict):
        _record_usage(record, completion.get("usage"))
    await exchange.finish(exchange.used_tokens(), complete_completion(completion))
    return Response(raw, media_type="application/json")


def stream_response(call: UpstreamCall, exchange: Exchange, client_wants_usage: bool) -> Response:
    """Return an SSE response that relays the upstream's events as they arrive."""
    relay = StreamRelay(call, exchange, client_wants_usage)
    return SSEResponse(relay.events(), on_close=relay.close, headers=_SSE_HEADERS)


class SSEResponse(StreamingResponse):
    """A text/event-stream response that runs ``on_close`` however the stream ends, disconnects included."""

    media_type = "text/event-stream"

    def __init__(
        self,
        content: AsyncIterator[bytes],
        on_close: Callable[[], Awaitable[None]],
        headers: dict[str, str],
    ) -> None:
        super().__init__(content, headers=headers)
        self._on_close = on_close
        self._events = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Starlette cancels the stream on disconnect, which can leave the generator suspended.
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                await aclose()
            await self._on_close()


class StreamRelay:
    """Relay of upstream SSE events to the client that records TTFT and usage and always ends with [DONE].

    When the response may be cached, every event also feeds a CompletionAssembler.
    """

    def __init__(self, call: UpstreamCall, exchange: Exchange, client_wants_usage: bool) -> None:
        self.call = call
        self.exchange = exchange
        self.record = exchange.record
        self.client_wants_usage = client_wants_usage
        self.assembler = CompletionAssembler() if exchange.plan.store else None
        self._finished = False
        self._failed = False

    async def close(self) -> None:
        """Release the upstream response (dropping its connection unless [DONE] came), then settle."""
        self.call.close(abort=not self._finished)
        complete = self._finished and not self._failed and self.assembler is not None
        completion = self.assembler.completion() if complete and self.assembler is not None else None
        used = self.exchange.used_tokens() if self._finished else None
        await self.exchange.finish(used, completion)

    async def events(self) -> AsyncIterator[bytes]:
        """Yield the encoded events for the client, one batch per network chunk from the upstream."""
        decoder = SSEDecoder()
        try:
            async for chunk in self.call.response.content.iter_any():
                batch, done = self._relay_chunk(decoder, chunk)
                if batch:
                    yield batch
                if done:
                    self._finished = True
                    return
            detail = "the stream ended before [DONE]"
            error = self.call.upstream.failure("stream", self.record.request_id, detail, 502)
        except (aiohttp.ClientError, TimeoutError, SSEProtocolError) as exc:
            error = _read_failure(self.call.upstream, self.record.request_id, exc)
        except Exception:
            logger.exception(
                "stream relay failed", extra={"event": "relay_error", "request_id": self.record.request_id}
            )
            self._failed = True
            yield encode_json_event(INTERNAL_ERROR_BODY) + DONE_EVENT
            return
        self._failed = True
        self.record.error_class = error.error_class
        yield encode_json_event(error.body()) + DONE_EVENT

    def _relay_chunk(self, decoder: SSEDecoder, chunk: bytes) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        for data in decoder.feed(chunk):
            if data == DONE_DATA:
                parts.append(DONE_EVENT)
                return b"".join(parts), True
            if self._should_forward(data):
                parts.append(b"data: " + data + b"\n\n")
        return b"".join(parts), False

    def _should_forward(self, data: bytes) -> bool:
        # Parsing every event costs CPU, so after the first token only usage and error events are
        # parsed, unless the response may be cached and needs every event.
        fast_path = self.assembler is None and self.record.ttft_s is not None
        if fast_path and not _has_usage_object(data) and b'"error"' not in data:
            return True
        try:
            event = json.loads(data)
        except ValueError:
            self._failed = True
            return True
        if not isinstance(event, dict):
            self._failed = True
            return True
        if self.assembler is not None:
            self.assembler.feed(event)
        if self.record.ttft_s is None and _has_content_delta(event):
            self.record.mark_first_token()
        if isinstance(event.get("error"), dict):
            self._failed = True
            self.record.error_class = "stream"
            self.call.upstream.log_failure(
                "stream", self.record.request_id, "the upstream sent an error event"
            )
        usage = event.get("usage")
        if isinstance(usage, dict):
            _record_usage(self.record, usage)
            return self.client_wants_usage or bool(event.get("choices"))
        return True


def _read_failure(upstream: Upstream, request_id: str, exc: BaseException) -> UpstreamError:
    if isinstance(exc, TimeoutError):
        return upstream.failure(
            "timeout", request_id, "the response stalled past the read or total timeout", 504
        )
    return upstream.failure("stream", request_id, f"the response broke off: {type(exc).__name__}: {exc}", 502)


def _has_usage_object(data: bytes) -> bool:
    # Upstreams asked for usage put "usage": null in every chunk but the last, so null does not count.
    return _USAGE_OBJECT.search(data) is not None


def _has_content_delta(event: dict[str, Any]) -> bool:
    choices = event.get("choices")
    if not isinstance(choices, list):
        return False
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and any(delta.get(key) for key in _CONTENT_DELTA_KEYS):
            return True
    return False


def _record_usage(record: RequestRecord, usage: object) -> None:
    if not isinstance(usage, dict):
        return
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int):
        record.prompt_tokens = prompt
    if isinstance(completion, int):
        record.completion_tokens = completion


def _wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True
