"""aiohttp server of the mock upstream LLM: an OpenAI-compatible chat completions API with set timing.

Tests change its behaviour while it runs (``PATCH /mock/settings``) and read what reached it
(``GET /mock/stats``): every request's arrival time, and every client that went away.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from target_service.mock_llm.answers import table_answer
from target_service.mock_llm.generation import (
    Completion,
    chunk_body,
    completion_body,
    fixed_completion,
    generate,
    usage_chunk_body,
)
from target_service.mock_llm.settings import MockSettings

MAX_ARRIVALS_KEPT = 10_000
PRECISE_TIMING_POLL_S = 0.0012
"""With precise timing, the stretch before each due time that is polled rather than left to a timer."""
SPLIT_WRITE_PAUSE_S = 0.005
"""Pause between the two halves of a split event, so they reach the client in separate reads."""


@dataclass
class MockStats:
    """What reached the mock. ``errors`` counts every 4xx and 5xx; times are Unix seconds."""

    requests: int = 0
    errors: int = 0
    in_flight: int = 0
    disconnects: int = 0
    arrivals: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_ARRIVALS_KEPT))
    """Per chat completion request: ``at``, ``request_id`` and ``traceparent`` headers."""
    disconnected_at: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_ARRIVALS_KEPT))
    """When each client that went away before its response ended was noticed."""
    first_token_lateness_s: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_ARRIVALS_KEPT))
    """Per stream, how long after its due time (arrival plus TTFT) the first content chunk was written."""

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "in_flight": self.in_flight,
            "disconnects": self.disconnects,
            "arrivals": list(self.arrivals),
            "disconnected_at": list(self.disconnected_at),
            "first_token_lateness_ms": _lateness_summary(self.first_token_lateness_s),
        }


def _lateness_summary(lateness_s: deque[float]) -> dict[str, float | int | None]:
    """Return the count, p50, p99 (nearest rank) and maximum of the lateness samples, in milliseconds."""
    ordered = sorted(lateness_s)
    if not ordered:
        return {"count": 0, "p50": None, "p99": None, "max": None}

    def rank(percentile: float) -> float:
        return round(ordered[max(math.ceil(percentile / 100 * len(ordered)), 1) - 1] * 1000, 3)

    return {"count": len(ordered), "p50": rank(50), "p99": rank(99), "max": rank(100)}


@dataclass
class MockState:
    """The settings in force, which ``PATCH /mock/settings`` replaces, and the counters."""

    settings: MockSettings
    stats: MockStats = field(default_factory=MockStats)
    error_rng: random.Random = field(default_factory=random.Random)
    limit: asyncio.Semaphore | None = None


class MockRequestError(Exception):
    """A request that gets an OpenAI error response."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str,
        code: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status, headers=self.headers)


STATE_KEY = web.AppKey("state", MockState)


def create_mock_app(settings: MockSettings) -> web.Application:
    """Build the mock's aiohttp application. Each app has its own counters and error sequence."""
    app = web.Application()
    app[STATE_KEY] = MockState(settings, error_rng=random.Random(settings.seed))
    if settings.max_concurrency is not None:
        app[STATE_KEY].limit = asyncio.Semaphore(settings.max_concurrency)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/mock/stats", stats)
    app.router.add_post("/mock/reset", reset_stats)
    app.router.add_patch("/mock/settings", update_settings)
    return app


async def chat_completions(request: web.Request) -> web.StreamResponse:
    limit = request.app[STATE_KEY].limit
    if limit is None:
        return await _serve(request)
    async with limit:
        return await _serve(request)


async def _serve(request: web.Request) -> web.StreamResponse:
    arrived_s = time.monotonic()  # the loop's own clock counts whole milliseconds under uvloop
    stats = request.app[STATE_KEY].stats
    stats.requests += 1
    stats.arrivals.append(
        {
            "at": time.time(),
            "request_id": request.headers.get("x-request-id"),
            "traceparent": request.headers.get("traceparent"),
        }
    )
    stats.in_flight += 1
    try:
        response = await _answer(request, arrived_s)
    except MockRequestError as exc:
        response = exc.response()
    except asyncio.CancelledError:
        _count_disconnect(stats)
        raise
    finally:
        stats.in_flight -= 1
    if response.status >= 400:
        stats.errors += 1
    return response


def _count_disconnect(stats: MockStats) -> None:
    stats.disconnects += 1
    stats.disconnected_at.append(time.time())


async def _answer(request: web.Request, arrived_s: float) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    settings = state.settings
    body = await _read_body(request)
    if body["model"] != settings.model:
        raise MockRequestError(
            404,
            f"The model {body['model']!r} does not exist.",
            "invalid_request_error",
            "model_not_found",
            "model",
        )
    if state.error_rng.random() < settings.error_rate:
        raise injected_error(settings)
    answer = table_answer(settings.seed, settings.wrong_answer_rate, body)
    if answer is not None:
        completion = fixed_completion(settings.model, body["messages"], answer, _max_tokens(body))
    else:
        completion = generate(
            settings.seed, settings.model, body["messages"], settings.output_tokens, _max_tokens(body)
        )
    if body.get("stream") is True:
        return await _stream(request, settings, completion, arrived_s, _wants_usage(body))
    chunk_count = _chunk_count(completion, settings)
    await _sleep_until(arrived_s + settings.chunk_due_s(max(chunk_count - 1, 0)), settings.precise_timing)
    return web.json_response(completion_body(completion), dumps=_dumps)


def injected_error(settings: MockSettings) -> MockRequestError:
    """Return the error an injected failure answers with: error_status, and Retry-After when set."""
    headers = {} if settings.retry_after_s is None else {"retry-after": str(settings.retry_after_s)}
    if settings.error_status == 429:
        return MockRequestError(
            429, "injected mock rate limit", "requests", "rate_limit_exceeded", headers=headers
        )
    type_ = "server_error" if settings.error_status >= 500 else "invalid_request_error"
    return MockRequestError(
        settings.error_status, "injected mock upstream error", type_, "mock_injected_error", headers=headers
    )


async def _stream(
    request: web.Request,
    settings: MockSettings,
    completion: Completion,
    arrived_s: float,
    include_usage: bool,
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"cache-control": "no-cache"})
    response.content_type = "text/event-stream"
    await response.prepare(request)
    writer = _EventWriter(request, response, settings)
    try:
        await _write_events(writer, settings, completion, arrived_s, include_usage)
    except ConnectionResetError:
        _count_disconnect(request.app[STATE_KEY].stats)  # the client went away mid-stream
    return response


class _EventWriter:
    """Writes SSE events, split in two network writes when the settings ask for it."""

    def __init__(self, request: web.Request, response: web.StreamResponse, settings: MockSettings) -> None:
        self.request = request
        self.response = response
        self.split = settings.split_utf8
        self.stats = request.app[STATE_KEY].stats

    async def write(self, payload: bytes) -> None:
        if not self.split:
            await self.response.write(payload)
            return
        cut = _split_point(payload)
        await self.response.write(payload[:cut])
        await asyncio.sleep(SPLIT_WRITE_PAUSE_S)
        await self.response.write(payload[cut:])

    def drop_connection(self) -> None:
        """Close the connection mid-response, after the events already written reach the client."""
        transport = self.request.transport
        if transport is not None:
            transport.close()


def _split_point(payload: bytes) -> int:
    """Return an offset just after the first byte of a multi-byte character, else the middle."""
    for offset, byte in enumerate(payload):
        if byte >= 0xC0:  # the lead byte of a multi-byte UTF-8 sequence
            return offset + 1
    return max(len(payload) // 2, 1)


async def _write_events(
    writer: _EventWriter,
    settings: MockSettings,
    completion: Completion,
    arrived_s: float,
    include_usage: bool,
) -> None:
    role_delta = {"role": "assistant", "content": ""}
    await writer.write(_event(chunk_body(completion, role_delta, include_usage=include_usage)))

    stalled_s = 0.0
    sent_tokens = 0
    for index, start in enumerate(range(0, len(completion.tokens), settings.chunk_tokens)):
        if settings.disconnect_after_tokens is not None and sent_tokens >= settings.disconnect_after_tokens:
            writer.drop_connection()
            return
        if (
            settings.stall_after_tokens is not None
            and sent_tokens >= settings.stall_after_tokens
            and not stalled_s
        ):
            stalled_s = settings.stall_ms / 1000
        # Each chunk waits for its absolute due time, so slow writes or late wake-ups do not add up.
        due_s = arrived_s + stalled_s + settings.chunk_due_s(index)
        await _sleep_until(due_s, settings.precise_timing)
        tokens = completion.tokens[start : start + settings.chunk_tokens]
        delta = {"content": "".join(tokens)}
        await writer.write(_event(chunk_body(completion, delta, include_usage=include_usage)))
        if index == 0:
            writer.stats.first_token_lateness_s.append(time.monotonic() - due_s)
        sent_tokens += len(tokens)

    finish = chunk_body(completion, {}, completion.finish_reason, include_usage=include_usage)
    tail = _event(finish)
    if include_usage:
        tail += _event(usage_chunk_body(completion))
    await writer.write(tail + b"data: [DONE]\n\n")
    await writer.response.write_eof()


async def _read_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads)
    except ValueError:
        raise MockRequestError(
            400, "The body is not valid JSON.", "invalid_request_error", "invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise MockRequestError(
            400, "The body must be a JSON object.", "invalid_request_error", "invalid_body"
        )
    if not isinstance(body.get("model"), str):
        raise MockRequestError(
            400, "'model' must be a string.", "invalid_request_error", "invalid_model", "model"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MockRequestError(
            400,
            "'messages' must be a non-empty array.",
            "invalid_request_error",
            "invalid_messages",
            "messages",
        )
    return body


def _max_tokens(body: dict[str, Any]) -> int | None:
    """Return max_completion_tokens, else max_tokens, else None, and reject values below 1."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise MockRequestError(
                400,
                f"'{name}' must be an integer of at least 1.",
                "invalid_request_error",
                "invalid_value",
                name,
            )
        return value
    return None


def _wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _chunk_count(completion: Completion, settings: MockSettings) -> int:
    return -(-len(completion.tokens) // settings.chunk_tokens)


async def _sleep_until(due_s: float, precise: bool) -> None:
    """Sleep until ``due_s`` on the monotonic clock.

    uvloop's timers count whole milliseconds and fire up to about one late, or a fraction of one
    early. The rest of the wait is spent yielding to the loop: only that fraction, or with
    ``precise`` the last PRECISE_TIMING_POLL_S, which keeps the loop busy but meets the due time.
    """
    delay_s = due_s - time.monotonic() - (PRECISE_TIMING_POLL_S if precise else 0.0)
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    while time.monotonic() < due_s:  # noqa: ASYNC110 - no event marks the due time
        await asyncio.sleep(0)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + _dumps(payload).encode() + b"\n\n"


async def list_models(request: web.Request) -> web.Response:
    model = {
        "id": request.app[STATE_KEY].settings.model,
        "object": "model",
        "created": 0,
        "owned_by": "slogate-mock",
    }
    return web.json_response({"object": "list", "data": [model]})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].stats.as_json())


async def reset_stats(request: web.Request) -> web.Response:
    """Zero the counters and forget the arrivals; requests in flight stay counted as in flight."""
    state = request.app[STATE_KEY]
    state.stats = MockStats(in_flight=state.stats.in_flight)
    return web.json_response(state.stats.as_json())


async def update_settings(request: web.Request) -> web.Response:
    """Replace the given settings fields for the requests that arrive from now on.

    ``max_concurrency`` and ``seed`` are fixed at start-up, since the queue and the error
    sequence already exist.
    """
    state = request.app[STATE_KEY]
    try:
        changes = await request.json()
        if not isinstance(changes, dict):
            raise ValueError("the body must be a JSON object of settings fields")
        fixed = {"max_concurrency", "seed"} & set(changes)
        if fixed:
            raise ValueError(f"{', '.join(sorted(fixed))} cannot change while the mock runs")
        state.settings = MockSettings.model_validate({**state.settings.model_dump(), **changes})
    except (ValueError, ValidationError) as exc:
        raise web.HTTPBadRequest(text=f"invalid settings: {exc}") from None
    return web.json_response(state.settings.model_dump())
