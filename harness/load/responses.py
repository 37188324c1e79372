"""Read chat completion responses into request records: JSON bodies, SSE streams and error bodies.

Pure functions over bytes with arrival stamps, so the built-in engine and the Locust workers
fill records the same way. A stream's bytes are stamped when they arrive, before any parsing,
so JSON decoding never delays a TTFT stamp.
"""

from __future__ import annotations

import json
from typing import Any

from harness.metrics.records import ErrorClass, RequestRecord, TokenSource

MAX_ERROR_TEXT = 300
MAX_EVENT_BYTES = 1 << 20
"""Longest SSE event accepted; a longer one makes the response invalid instead of exhausting memory."""
_CONTENT_KEYS = ("content", "reasoning_content", "reasoning")


class InvalidResponse(Exception):
    """A 2xx response whose body does not have the shape of a chat completion."""


def fail(record: RequestRecord, error_class: ErrorClass, message: str) -> None:
    """Mark ``record`` failed, unless an earlier failure already explains it."""
    if record.error_class is None:
        record.error_class = error_class
        record.error = message[:MAX_ERROR_TEXT]


def read_error(status: int, body: bytes, record: RequestRecord) -> None:
    """Classify a non-200 response and keep the server's error message."""
    text = body.decode("utf-8", errors="replace")
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = text
    error_class = ErrorClass.RATE_LIMITED if status == 429 else ErrorClass.HTTP_STATUS
    if 200 <= status < 300:
        error_class = ErrorClass.INVALID_RESPONSE
    fail(record, error_class, f"HTTP {status}: {message}")


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


def read_completion(raw: bytes, record: RequestRecord) -> None:
    """Read a non-streamed chat completion; raise InvalidResponse for another shape."""
    try:
        body = _object(json.loads(raw), "the response")
    except ValueError:
        raise InvalidResponse(f"the response is not JSON: {raw[:200]!r}") from None
    choices = _choices(body)
    if not choices:
        raise InvalidResponse("the response has no choices")
    if not all(choice.get("finish_reason") for choice in choices):
        fail(record, ErrorClass.TRUNCATED, "a choice has no finish_reason")
    usage = _usage(body) or {}
    set_tokens(record, usage.get("prompt_tokens"), usage.get("completion_tokens"))


class StreamReader:
    """Reads an SSE body fed in pieces: ``data:`` lines up to a blank line form one event.

    ``feed`` returns False once the stream has failed or ended with ``[DONE]``, so the caller
    can stop reading; ``finish`` judges a body that ended.
    """

    __slots__ = (
        "_data_lines",
        "_event_arrived",
        "_pending",
        "completion_tokens",
        "done",
        "failed",
        "finished",
        "prompt_tokens",
        "record",
    )

    def __init__(self, record: RequestRecord) -> None:
        self.record = record
        self.done = False
        self.failed = False
        self.finished = False
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self._pending = b""
        self._data_lines: list[bytes] = []
        self._event_arrived = 0.0

    def feed(self, data: bytes, arrived: float) -> bool:
        """Apply the complete lines in ``data``, which arrived at ``arrived``; return False to stop."""
        buffer = self._pending + data if self._pending else data
        lines = buffer.split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > MAX_EVENT_BYTES:
            raise InvalidResponse(f"an SSE line is longer than {MAX_EVENT_BYTES} bytes")
        return all(self._line(line.rstrip(b"\r"), arrived) for line in lines)

    def _line(self, line: bytes, arrived: float) -> bool:
        if line.startswith(b"data:"):
            if not self._data_lines:
                self._event_arrived = arrived
            self._data_lines.append(line[6:] if line.startswith(b"data: ") else line[5:])
            return True
        if line or not self._data_lines:
            return True  # event:, id:, retry: and comment lines carry nothing the metrics need
        payload = b"\n".join(self._data_lines)
        self._data_lines = []
        return self._dispatch(payload, self._event_arrived)

    def _dispatch(self, payload: bytes, arrived: float) -> bool:
        """Apply one SSE event to the record; return False when the stream failed or is done."""
        if payload.strip() == b"[DONE]":
            self.done = True
            return False
        try:
            event = _object(json.loads(payload), "SSE data")
        except ValueError:
            raise InvalidResponse(f"SSE data is not JSON: {payload[:200]!r}") from None
        if "error" in event:
            error = event["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            fail(self.record, ErrorClass.SSE_ERROR, f"SSE error event: {message}")
            self.failed = True
            return False
        self._apply_choices(event, arrived)
        usage = _usage(event)
        if usage:
            self.prompt_tokens = usage.get("prompt_tokens")
            self.completion_tokens = usage.get("completion_tokens")
        return True

    def _apply_choices(self, event: dict[str, Any], arrived: float) -> None:
        record = self.record
        for choice in _choices(event):
            delta = _object(choice.get("delta") or {}, "a delta")
            if any(delta.get(key) for key in _CONTENT_KEYS):
                if record.first_token is None:
                    record.first_token = arrived
                record.content_chunks += 1
                record.chunk_times.append(arrived)
            if choice.get("finish_reason"):
                self.finished = True

    def finish(self) -> None:
        """Judge the stream once its body ended: an event left open counts, then [DONE] is required."""
        if self.failed:
            return
        if not self.done and self._pending.startswith(b"data:"):
            self._line(self._pending.rstrip(b"\r"), self._event_arrived)
        if not self.done and self._data_lines:
            self._dispatch(b"\n".join(self._data_lines), self._event_arrived)
            self._data_lines = []
        if self.failed:
            return
        if not self.done:
            fail(self.record, ErrorClass.TRUNCATED, "the stream ended without data: [DONE]")
        elif not self.finished:
            fail(self.record, ErrorClass.TRUNCATED, "the stream ended without a finish_reason")
        set_tokens(self.record, self.prompt_tokens, self.completion_tokens)


def set_tokens(record: RequestRecord, prompt: Any, completion: Any) -> None:
    """Take token counts from usage; without usage, count the content deltas."""
    if isinstance(completion, int) and not isinstance(completion, bool):
        record.prompt_tokens = prompt if isinstance(prompt, int) else None
        record.completion_tokens = completion
        record.token_source = TokenSource.USAGE
    elif record.content_chunks:
        record.completion_tokens = record.content_chunks
        record.token_source = TokenSource.COUNTED
