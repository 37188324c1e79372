"""Send one chat completion request and fill its record: status, timestamps, tokens, error class.

Timestamps come from ``time.monotonic`` and are taken as each line arrives, before the
line is parsed, so JSON decoding never delays a TTFT stamp.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from harness.metrics.records import ErrorClass, RequestRecord, TokenSource

_MAX_ERROR_TEXT = 300


@dataclass(frozen=True)
class PreparedRequest:
    """A request kind with its body serialized once, ahead of the run."""

    path: str
    body: bytes
    headers: Mapping[str, str]
    stream: bool


class _StreamState:
    __slots__ = ("completion_tokens", "done", "finished", "prompt_tokens")

    def __init__(self) -> None:
        self.done = False
        self.finished = False
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None


async def send_request(
    session: aiohttp.ClientSession,
    base_url: str,
    request: PreparedRequest,
    record: RequestRecord,
    request_timeout: aiohttp.ClientTimeout,
    clock_origin: float,
) -> None:
    """Send ``request`` and fill ``record``; never raises for a failed request."""
    now = time.monotonic
    record.sent = now() - clock_origin
    try:
        async with session.post(
            base_url + request.path, data=request.body, headers=request.headers, timeout=request_timeout
        ) as response:
            record.first_byte = now() - clock_origin
            record.status = response.status
            record.cache = response.headers.get("x-cache")
            record.upstream = response.headers.get("x-upstream")
            if response.status != 200:
                await _read_error(response, record)
            elif request.stream:
                await _read_stream(response, record, clock_origin)
            else:
                await _read_json(response, record)
    except TimeoutError:
        _fail(record, ErrorClass.TIMEOUT, "no complete response within the request timeout")
    except aiohttp.ClientConnectorError as exc:
        _fail(record, ErrorClass.CONNECT, str(exc))
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        _fail(record, ErrorClass.TRUNCATED, f"connection closed mid-response: {exc}")
    except aiohttp.ClientError as exc:
        error_class = ErrorClass.CONNECT if record.first_byte is None else ErrorClass.TRUNCATED
        _fail(record, error_class, f"{type(exc).__name__}: {exc}")
    except ValueError as exc:  # aiohttp raises it for an SSE line beyond its buffer limit
        _fail(record, ErrorClass.INVALID_RESPONSE, f"unreadable response: {exc}")
    finally:
        record.end = now() - clock_origin


def _fail(record: RequestRecord, error_class: ErrorClass, message: str) -> None:
    if record.error_class is None:
        record.error_class = error_class
        record.error = message[:_MAX_ERROR_TEXT]


async def _read_error(response: aiohttp.ClientResponse, record: RequestRecord) -> None:
    text = await response.text(errors="replace")
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = text
    error_class = ErrorClass.RATE_LIMITED if response.status == 429 else ErrorClass.HTTP_STATUS
    if 200 <= response.status < 300:
        error_class = ErrorClass.INVALID_RESPONSE
    _fail(record, error_class, f"HTTP {response.status}: {message}")


async def _read_json(response: aiohttp.ClientResponse, record: RequestRecord) -> None:
    raw = await response.read()
    try:
        body = json.loads(raw)
        choices = body["choices"]
    except (ValueError, KeyError, TypeError):
        _fail(record, ErrorClass.INVALID_RESPONSE, f"not a chat completion: {raw[:200]!r}")
        return
    if not all(choice.get("finish_reason") for choice in choices):
        _fail(record, ErrorClass.TRUNCATED, "a choice has no finish_reason")
    usage = body.get("usage") or {}
    _set_tokens(record, usage.get("prompt_tokens"), usage.get("completion_tokens"))


async def _read_stream(response: aiohttp.ClientResponse, record: RequestRecord, clock_origin: float) -> None:
    state = _StreamState()
    async for line in response.content:
        arrived = time.monotonic() - clock_origin
        if not line.startswith(b"data:"):
            continue  # blank separators, comments and event: lines carry no payload
        payload = line[5:].strip()
        if payload == b"[DONE]":
            state.done = True
            break
        if not _handle_event(payload, arrived, record, state):
            return
    _finish_stream(record, state)


def _handle_event(payload: bytes, arrived: float, record: RequestRecord, state: _StreamState) -> bool:
    """Apply one SSE event to the record; return False when the stream failed."""
    try:
        event: Any = json.loads(payload)
    except ValueError:
        _fail(record, ErrorClass.INVALID_RESPONSE, f"SSE data is not JSON: {payload[:200]!r}")
        return False
    if not isinstance(event, dict):
        _fail(record, ErrorClass.INVALID_RESPONSE, f"SSE data is not a JSON object: {payload[:200]!r}")
        return False
    if "error" in event:
        error = event["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        _fail(record, ErrorClass.SSE_ERROR, f"SSE error event: {message}")
        return False
    for choice in event.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning"):
            if record.first_token is None:
                record.first_token = arrived
            record.content_chunks += 1
        if choice.get("finish_reason"):
            state.finished = True
    usage = event.get("usage")
    if usage:
        state.prompt_tokens = usage.get("prompt_tokens")
        state.completion_tokens = usage.get("completion_tokens")
    return True


def _finish_stream(record: RequestRecord, state: _StreamState) -> None:
    if not state.done:
        _fail(record, ErrorClass.TRUNCATED, "the stream ended without data: [DONE]")
    elif not state.finished:
        _fail(record, ErrorClass.TRUNCATED, "the stream ended without a finish_reason")
    _set_tokens(record, state.prompt_tokens, state.completion_tokens)


def _set_tokens(record: RequestRecord, prompt: Any, completion: Any) -> None:
    if isinstance(completion, int):
        record.prompt_tokens = prompt if isinstance(prompt, int) else None
        record.completion_tokens = completion
        record.token_source = TokenSource.USAGE
    elif record.content_chunks:
        record.completion_tokens = record.content_chunks
        record.token_source = TokenSource.COUNTED


def client_timeout(total_s: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total_s)


async def sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` on the monotonic clock."""
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
