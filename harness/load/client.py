"""Send one chat completion request and fill its record: status, timestamps, tokens, error class.

Timestamps come from ``time.monotonic`` and are taken when bytes arrive, before they are
parsed, so JSON decoding never delays a TTFT stamp. A response of any shape ends in a
record, never in an exception: a malformed body is an ``invalid_response`` error.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from harness.load.http import ConnectError, ConnectionClosed, HostPool, ProtocolViolation
from harness.load.responses import InvalidResponse, StreamReader, fail, read_completion, read_error
from harness.metrics.records import ErrorClass, RequestRecord

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
_TRACKED_BYTES = tuple(name.encode() for name in TRACKED_HEADERS)
MAX_BODY_BYTES = 16 << 20
"""Largest non-streamed body read; a larger one is an invalid response."""


@dataclass(frozen=True)
class PreparedRequest:
    """A request kind with its body serialized once, ahead of the run."""

    path: str
    body: bytes
    headers: Mapping[str, str]
    stream: bool
    tenant: str | None = None


class _Response:
    """Collects one response for a record: headers, then the body as JSON or as SSE."""

    __slots__ = ("body", "clock_origin", "record", "status", "stream_reader")

    def __init__(self, record: RequestRecord, stream: bool, clock_origin: float) -> None:
        self.record = record
        self.clock_origin = clock_origin
        self.status = 0
        self.body = bytearray()
        self.stream_reader = StreamReader(record) if stream else None

    def on_headers(self, status: int, headers: Mapping[bytes, bytes], arrived: float) -> None:
        record = self.record
        record.first_byte = arrived - self.clock_origin
        record.status = self.status = status
        if headers:
            cache = headers.get(b"x-cache")
            upstream = headers.get(b"x-upstream")
            record.cache = cache.decode("latin-1") if cache is not None else None
            record.upstream = upstream.decode("latin-1") if upstream is not None else None
            tracked = {
                name.decode(): headers[name].decode("latin-1") for name in _TRACKED_BYTES if name in headers
            }
            record.headers = tracked or None
        if status != 200:
            self.stream_reader = None

    def on_body(self, data: bytes, arrived: float) -> bool:
        if self.stream_reader is not None:
            return self.stream_reader.feed(data, arrived - self.clock_origin)
        self.body += data
        if len(self.body) > MAX_BODY_BYTES:
            raise InvalidResponse(f"the response body is larger than {MAX_BODY_BYTES} bytes")
        return True

    def finish(self) -> None:
        if self.status != 200:
            read_error(self.status, bytes(self.body), self.record)
        elif self.stream_reader is not None:
            self.stream_reader.finish()
        else:
            read_completion(bytes(self.body), self.record)


async def send_request(
    pool: HostPool,
    request: bytes,
    stream: bool,
    record: RequestRecord,
    deadline: float,
    clock_origin: float,
) -> None:
    """Send the serialized ``request`` and fill ``record``; never raises for a failed request.

    ``deadline`` is on the monotonic clock and counts from the intended start, so a request
    that waited for a slot has less time left, and one whose time ran out is not sent.
    """
    now = time.monotonic()
    if deadline - now <= 0:
        fail(record, ErrorClass.TIMEOUT, "not sent: the request timeout passed while it waited to be sent")
        record.end = now - clock_origin
        return
    record.sent = now - clock_origin
    response = _Response(record, stream, clock_origin)
    try:
        completed = await pool.exchange(request, response, deadline)
        record.end = completed - clock_origin
        response.finish()
    except TimeoutError:
        fail(record, ErrorClass.TIMEOUT, "no complete response within the request timeout")
    except ConnectError as exc:
        fail(record, ErrorClass.CONNECT, str(exc))
    except ConnectionClosed as exc:
        if exc.got_response:
            fail(record, ErrorClass.TRUNCATED, f"connection closed mid-response: {exc}")
        else:
            fail(record, ErrorClass.CONNECT, f"connection closed before a response: {exc}")
    except (InvalidResponse, ProtocolViolation) as exc:
        fail(record, ErrorClass.INVALID_RESPONSE, str(exc))
    if record.end is None:
        record.end = time.monotonic() - clock_origin
