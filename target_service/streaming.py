"""Server-sent events in OpenAI's streaming format: an incremental parser and the event encoders."""

from __future__ import annotations

import json
from typing import Any

DONE_DATA = b"[DONE]"
DONE_EVENT = b"data: [DONE]\n\n"
MAX_EVENT_BYTES = 16 * 1024 * 1024


class SSEProtocolError(ValueError):
    """The event stream is malformed, for example a line longer than ``MAX_EVENT_BYTES``."""


class SSEDecoder:
    """Incremental parser that turns ``text/event-stream`` bytes into the data of each complete event.

    Feed it network chunks in any split. It splits on bytes and returns data as bytes, so a
    multi-byte UTF-8 character cut between two chunks reaches the JSON decoder whole. Lines
    may end in LF or CRLF. Comments and fields other than ``data`` are dropped, because
    OpenAI-compatible chat streams carry everything in ``data``.
    """

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buffer = bytearray()
        self._data_lines: list[bytes] = []
        self._data_size = 0
        self._max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add ``chunk`` and return the data of every event it completed, in order."""
        self._buffer += chunk
        events: list[bytes] = []
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            line = bytes(self._buffer[start:end]).removesuffix(b"\r")
            start = end + 1
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        del self._buffer[:start]
        if len(self._buffer) + self._data_size > self._max_event_bytes:
            raise SSEProtocolError(f"server-sent event exceeds {self._max_event_bytes} bytes")
        return events

    def _process_line(self, line: bytes) -> bytes | None:
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None
        field, _, value = line.partition(b":")
        if field == b"data":
            value = value.removeprefix(b" ")
            self._data_lines.append(value)
            self._data_size += len(value) + 1
        return None

    def _dispatch(self) -> bytes | None:
        if not self._data_lines:
            return None
        data = b"\n".join(self._data_lines)
        self._data_lines = []
        self._data_size = 0
        return data


def encode_event(data: bytes) -> bytes:
    """Encode ``data`` as one event, with one ``data:`` line per line of ``data``."""
    if b"\n" not in data:
        return b"data: " + data + b"\n\n"
    return b"".join(b"data: " + line + b"\n" for line in data.split(b"\n")) + b"\n"


def encode_json_event(payload: dict[str, Any]) -> bytes:
    """Encode ``payload`` as compact JSON in one event."""
    return encode_event(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
