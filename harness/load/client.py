"""Send one chat completion request and fill its record: status, timestamps, tokens, error class.

Timestamps come from ``time.monotonic`` and are taken as each line arrives, before the
line is parsed, so JSON decoding never delays a TTFT stamp. A response of any shape ends in
a record, never in an exception: a malformed body is an ``invalid_response`` error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from harness.metrics.records import ErrorClass, RequestRecord, TokenSource

_MAX_ERROR_TEXT = 300
TRACKED_HEADERS = (
    "retry-after",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)
"""Response headers kept in each record, for checks on rate limits and Retry-After."""
_CONTENT_KEYS = ("content", "reasoning_content", "reasoning")


@dataclass(frozen=True)
class PreparedRequest:
    """A request kind with its body serialized once, ahead of the run."""

    path: str
    body: bytes
    headers: Mapping[str, str]
    stream: bool
    tenant: str | None = None


class InvalidResponse(Exception):
    """A 2xx response whose body does not have the shape of a chat completion."""


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
    deadline: float,
    clock_origin: float,
) -> None:
    """Send ``request`` and fill ``record``; never raises for a failed request.

    ``deadline`` is on the monotonic clock and counts from the intended start, so a request
    that waited for a slot has less time left, and one whose time ran out is not sent.
    """
    now = time.monotonic
    remaining_s = deadline - now()
    if remaining_s <= 0:
        _fail(record, ErrorClass.TIMEOUT, "not sent: the request timeout passed while it waited to be sent")
        record.end = now() - clock_origin
        return
    record.sent = now() - clock_origin
    try:
        await _exchange(
            session, base_url, request, record, aiohttp.ClientTimeout(total=remaining_s), clock_origin
        )
    except TimeoutError:
        _fail(record, ErrorClass.TIMEOUT, "no complete response within the request timeout")
    except aiohttp.ClientConnectorError as exc:
        _fail(record, ErrorClass.CONNECT, str(exc))
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
        _fail(record, ErrorClass.TRUNCATED, f"connection closed mid-response: {exc}")
    except aiohttp.ClientError as exc:
        error_class = ErrorClass.CONNECT if record.first_byte is None else ErrorClass.TRUNCATED
        _fail(record, error_class, f"{type(exc).__name__}: {exc}")
    except InvalidResponse as exc:
        _fail(record, ErrorClass.INVALID_RESPONSE, str(exc))
    except ValueError as exc:  # aiohttp raises it for an SSE line beyond its buffer limit
        _fail(record, ErrorClass.INVALID_RESPONSE, f"unreadable response: {exc}")
    finally:
        record.end = now() - clock_origin


async def _exchange(
    session: aiohttp.ClientSession,
    base_url: str,
    request: PreparedRequest,
    record: RequestRecord,
    limit: aiohttp.ClientTimeout,
    clock_origin: float,
) -> None:
    async with session.post(
        base_url + request.path, data=request.body, headers=request.headers, timeout=limit
    ) as response:
        record.first_byte = time.monotonic() - clock_origin
        record.status = response.status
        record.cache = response.headers.get("x-cache")
        record.upstream = response.headers.get("x-upstream")
        tracked = {name: response.headers[name] for name in TRACKED_HEADERS if name in response.headers}
        if tracked:
            record.headers = tracked
        if response.status != 200:
            await _read_error(response, record)
        elif request.stream:
            await _read_stream(response, record, clock_origin)
        else:
            await _read_json(response, record)


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


def _object(value: Any, description: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidResponse(f"{description} is not a JSON object: {str(value)[:200]}")
    return value


def _choices(body: dict[str, Any]) -> list[dict[str, Any]]:
    choices = body.get("choices") or []
    if not isinstance(choices, list):
        raise InvalidResponse(f"'choices' is not a list: {str(choices)[:200]}")
    return [_object(choice, "a choice") for choice in choices]


def _usage(body: dict[str, Any]) -> dict[str, Any] | None:
    usage = body.get("usage")
    return None if usage is None else _object(usage, "'usage'")


async def _read_json(response: aiohttp.ClientResponse, record: RequestRecord) -> None:
    raw = await response.read()
    try:
        body = _object(json.loads(raw), "the response")
    except ValueError:
        raise InvalidResponse(f"the response is not JSON: {raw[:200]!r}") from None
    choices = _choices(body)
    if not choices:
        raise InvalidResponse("the response has no choices")
    if not all(choice.get("finish_reason") for choice in choices):
        _fail(record, ErrorClass.TRUNCATED, "a choice has no finish_reason")
    usage = _usage(body) or {}
    _set_tokens(record, usage.get("prompt_tokens"), usage.get("completion_tokens"))


async def _read_stream(response: aiohttp.ClientResponse, record: RequestRecord, clock_origin: float) -> None:
    """Read SSE events: ``data:`` lines up to a blank line form one event, as the SSE format defines."""
    state = _StreamState()
    data_lines: list[bytes] = []
    event_arrived = 0.0
    async for raw_line in response.content:
        arrived = time.monotonic() - clock_origin
        line = raw_line.rstrip(b"\r\n")
        if line.startswith(b"data:"):
            if not data_lines:
                event_arrived = arrived
            data_lines.append(line[6:] if line.startswith(b"data: ") else line[5:])
        elif not line and data_lines:
            if not _dispatch(b"\n".join(data_lines), event_arrived, record, state):
                return
            data_lines = []
            if state.done:
                break
        # event:, id:, retry: and comment lines carry nothing the metrics need
    if data_lines and not state.done and not _dispatch(b"\n".join(data_lines), event_arrived, record, state):
        return
    _finish_stream(record, state)


def _dispatch(payload: bytes, arrived: float, record: RequestRecord, state: _StreamState) -> bool:
    """Apply one SSE event to the record; return False when the stream failed."""
    if payload.strip() == b"[DONE]":
        state.done = True
        return True
    try:
        event = _object(json.loads(payload), "SSE data")
    except ValueError:
        raise InvalidResponse(f"SSE data is not JSON: {payload[:200]!r}") from None
    if "error" in event:
        error = event["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        _fail(record, ErrorClass.SSE_ERROR, f"SSE error event: {message}")
        return False
    for choice in _choices(event):
        delta = _object(choice.get("delta") or {}, "a delta")
        if any(delta.get(key) for key in _CONTENT_KEYS):
            if record.first_token is None:
                record.first_token = arrived
            record.content_chunks += 1
        if choice.get("finish_reason"):
            state.finished = True
    usage = _usage(event)
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
