"""Relay of an upstream response to the client: SSE events as they arrive, or a JSON body read whole."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from target_service.cache import CompletionAssembler, complete_completion
from target_service.errors import INTERNAL_ERROR_BODY, UpstreamError, shutting_down_error
from target_service.exchange import Exchange
from target_service.observability import RequestRecord, logger
from target_service.providers import Upstream, UpstreamCall
from target_service.resilience import BreakerPermit
from target_service.streaming import DONE_DATA, DONE_EVENT, SSEDecoder, SSEProtocolError, encode_json_event
from target_service.tracing import Span

_CONTENT_DELTA_KEYS = ("content", "reasoning_content", "reasoning", "tool_calls")
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
SSE_HEADERS = {"cache-control": "no-cache"}


class Attempt:
    """One call to an upstream: the open response, its breaker permit and its span."""

    def __init__(self, call: UpstreamCall, permit: BreakerPermit, span: Span) -> None:
        self.call = call
        self.permit = permit
        self.span = span

    def end(self, outcome: str, error: str | None = None) -> None:
        """Report the outcome (success, failure or none) to the breaker and end the span."""
        {"success": self.permit.success, "failure": self.permit.failure}.get(outcome, self.permit.release)()
        self.span.end(error)


async def read_completion(attempt: Attempt, exchange: Exchange) -> Response:
    """Read a non-streamed completion, record its usage, settle limits, store it, and return it unchanged."""
    call, record = attempt.call, exchange.record
    try:
        raw = await _read_body(call, record.request_id)
    except BaseException:
        call.close(abort=True)
        raise
    call.close()
    try:
        completion = json.loads(raw)
    except ValueError:
        raise call.upstream.failure(
            "stream", record.request_id, "response body is not valid JSON", 502
        ) from None
    attempt.end("success")
    if isinstance(completion, dict):
        _record_usage(record, completion.get("usage"))
    await exchange.finish(exchange.used_tokens(), complete_completion(completion))
    return Response(raw, media_type="application/json")


async def _read_body(call: UpstreamCall, request_id: str) -> bytes:
    loop = asyncio.get_running_loop()
    idle_s = call.upstream.config.idle_timeout_s
    parts = []
    try:
        while chunk := await call.read_chunk(loop.time() + idle_s, "idle", request_id):
            parts.append(chunk)
    except aiohttp.ClientError as exc:
        raise read_failure(call.upstream, request_id, exc) from exc
    return b"".join(parts)


def stream_response(relay: StreamRelay) -> Response:
    """Return an SSE response that relays the upstream's events as they arrive."""
    unregister = relay.exchange.gateway.lifecycle.on_expire(relay.interrupt)

    async def on_close() -> None:
        unregister()
        await relay.close()

    return SSEResponse(relay.events(), on_close=on_close, headers=SSE_HEADERS)


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

    ``read_prelude`` reads the events before the first content delta and holds them back, so a
    failure before the first token reaches no client byte and the request can still be retried
    or sent to a fallback. From the first token on, every network chunk is passed on as it arrives.
    When the response may be cached, every event also feeds a CompletionAssembler.
    """

    def __init__(self, attempt: Attempt, exchange: Exchange) -> None:
        self.attempt = attempt
        self.call = attempt.call
        self.exchange = exchange
        self.record: RequestRecord = exchange.record
        self.client_wants_usage = exchange.client_wants_usage
        self.assembler = CompletionAssembler() if exchange.plan.store else None
        self.decoder = SSEDecoder()
        self.prelude = b""
        self._seen_content = False
        self._finished = False
        self._failed = False
        self._upstream_failed = False
        self._interrupted = False
        self._next_batch: tuple[bytes, bool] = (b"", False)

    async def read_prelude(self, first_token_deadline: float) -> None:
        """Read until the first content delta (or the end), within ``first_token_deadline`` (loop time).

        Raises UpstreamError, with the connection dropped, when the upstream fails before it.
        """
        request_id = self.record.request_id
        parts: list[bytes] = []
        try:
            while not self._seen_content and not self._finished:
                chunk = await self.call.read_chunk(first_token_deadline, "first-token", request_id)
                if not chunk:
                    raise self.call.upstream.failure(
                        "stream", request_id, "the stream ended before [DONE]", 502
                    )
                batch, self._finished = self._relay_chunk(chunk)
                parts.append(batch)
                if self._failed:
                    raise self.call.upstream.failure(
                        "stream", request_id, "the upstream sent an error event before its first token", 502
                    )
        except (aiohttp.ClientError, SSEProtocolError) as exc:
            self.call.close(abort=True)
            raise read_failure(self.call.upstream, request_id, exc) from exc
        except BaseException:
            self.call.close(abort=True)
            raise
        self.prelude = b"".join(parts)
        if self._seen_content:
            self.record.mark_first_token()

    def interrupt(self) -> None:
        """End the stream with a shutdown error event, because the drain time ran out."""
        self._interrupted = True
        self.call.close(abort=True)

    async def close(self) -> None:
        """Release the upstream response (dropping its connection unless [DONE] came), then settle."""
        self.call.close(abort=not self._finished)
        if self._finished and not self._failed:
            self.attempt.end("success")
        elif self._upstream_failed:
            self.attempt.end("failure", self.record.error_class)
        else:
            self.attempt.end("none", "interrupted" if self._interrupted else None)
        complete = self._finished and not self._failed and self.assembler is not None
        completion = self.assembler.completion() if complete and self.assembler is not None else None
        used = self.exchange.used_tokens() if self._finished else None
        await self.exchange.finish(used, completion)

    async def events(self) -> AsyncIterator[bytes]:
        """Yield the encoded events for the client, one batch per network chunk from the upstream."""
        if self.prelude:
            yield self.prelude
        if self._finished:
            return
        try:
            error = await self._error_or_none()
            while error is None:
                batch, done = self._next_batch
                if batch:
                    yield batch
                if done:
                    self._finished = True
                    return
                error = await self._error_or_none()
        except Exception:
            logger.exception(
                "stream relay failed", extra={"event": "relay_error", "request_id": self.record.request_id}
            )
            self._failed = True
            yield encode_json_event(INTERNAL_ERROR_BODY) + DONE_EVENT
            return
        yield self._fail(error)

    async def _error_or_none(self) -> UpstreamError | None:
        """Read the next chunk into ``_next_batch``; return the error that ends the stream, if any."""
        loop = asyncio.get_running_loop()
        request_id = self.record.request_id
        try:
            chunk = await self.call.read_chunk(
                loop.time() + self.call.upstream.config.idle_timeout_s, "idle", request_id
            )
            if chunk and not self._interrupted:
                self._next_batch = self._relay_chunk(chunk)
        except UpstreamError as exc:
            return exc
        except (aiohttp.ClientError, SSEProtocolError) as exc:
            if self._interrupted:
                return shutting_down_error_for(self.call.upstream)
            return read_failure(self.call.upstream, request_id, exc)
        if self._interrupted:
            return shutting_down_error_for(self.call.upstream)
        if not chunk:
            return self.call.upstream.failure("stream", request_id, "the stream ended before [DONE]", 502)
        return None

    def _fail(self, error: UpstreamError) -> bytes:
        self._failed = True
        if self._interrupted:
            self.record.error_class = "shutdown"
        else:
            self._upstream_failed = True
            self.record.error_class = error.error_class
        return encode_json_event(error.body()) + DONE_EVENT

    def _relay_chunk(self, chunk: bytes) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        for data in self.decoder.feed(chunk):
            if data == DONE_DATA:
                parts.append(DONE_EVENT)
                return b"".join(parts), True
            if self._should_forward(data):
                parts.append(b"data: " + data + b"\n\n")
        return b"".join(parts), False

    def _should_forward(self, data: bytes) -> bool:
        # Parsing every event costs CPU, so after the first token only usage and error events are
        # parsed, unless the response may be cached and needs every event.
        fast_path = self.assembler is None and self._seen_content
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
        if not self._seen_content and _has_content_delta(event):
            self._seen_content = True
        if isinstance(event.get("error"), dict):
            self._failed = True
            self._upstream_failed = True
            self.record.error_class = "stream"
            self.call.upstream.log_failure(
                "stream", self.record.request_id, "the upstream sent an error event"
            )
        usage = event.get("usage")
        if isinstance(usage, dict):
            _record_usage(self.record, usage)
            return self.client_wants_usage or bool(event.get("choices"))
        return True


def shutting_down_error_for(upstream: Upstream) -> UpstreamError:
    """Return the stream-ending error of a drain that ran out, in the UpstreamError shape relays use."""
    error = shutting_down_error()
    return UpstreamError(upstream.name, "stream", error.status, error.message, error.code or "")


def read_failure(upstream: Upstream, request_id: str, exc: BaseException) -> UpstreamError:
    """Return the error of a response that broke off or could not be parsed."""
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
