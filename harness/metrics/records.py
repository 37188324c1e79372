"""One record per request, with the timestamps every LLM metric is computed from.

All times are seconds on the monotonic clock of the load generator, relative to the start
of the run, so records from one run compare directly and never jump with the wall clock.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class ErrorClass(StrEnum):
    CONNECT = "connect"
    """The TCP connection could not be opened."""
    TIMEOUT = "timeout"
    """The request exceeded the scenario's per-request timeout."""
    HTTP_STATUS = "http_status"
    """The server answered with a non-2xx status other than 429."""
    RATE_LIMITED = "rate_limited"
    """The server answered 429; counted apart from errors."""
    SSE_ERROR = "sse_error"
    """A stream carried an error event."""
    TRUNCATED = "truncated"
    """A stream ended without [DONE] or without a finish_reason, or the connection dropped mid-response."""
    INVALID_RESPONSE = "invalid_response"
    """A 2xx response whose body is not the expected JSON."""
    DROPPED = "dropped"
    """Open model: never sent, because max_in_flight requests were outstanding until the load ended.

    Counted as failed, so a server too slow to drain its queue cannot look better for it.
    """


class TokenSource(StrEnum):
    USAGE = "usage"
    """Counts reported by the server in ``usage``."""
    COUNTED = "counted"
    """The server sent no usage; completion tokens are the number of content deltas."""


@dataclass(slots=True)
class RequestRecord:
    index: int
    kind: int
    """Position of the request kind in the scenario's ``load.requests``."""
    replica: int
    """Gateway replica the request was sent to."""
    stream: bool
    intended_start: float
    """When the schedule meant to send the request; latencies are measured from here."""
    sent: float | None = None
    """When the request was actually handed to the HTTP client."""
    first_byte: float | None = None
    """When the response headers arrived."""
    first_token: float | None = None
    """When the first content (or reasoning) delta arrived; streams only."""
    end: float | None = None
    status: int | None = None
    error_class: ErrorClass | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    token_source: TokenSource | None = None
    content_chunks: int = 0
    cache: str | None = None
    """The response's x-cache header: hit, miss or bypass."""
    upstream: str | None = None
    """The response's x-upstream header: the upstream that served the request."""
    tenant: str | None = None
    """The tenant whose API key the request carried."""
    headers: dict[str, str] | None = None
    """Rate-limit and Retry-After response headers, when present."""

    @property
    def ok(self) -> bool:
        return self.error_class is None and self.status is not None and 200 <= self.status < 300

    @property
    def is_error(self) -> bool:
        return not self.ok and self.error_class is not ErrorClass.RATE_LIMITED

    @property
    def e2e_latency(self) -> float | None:
        return None if self.end is None else self.end - self.intended_start

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.intended_start

    @property
    def send_lag(self) -> float | None:
        """How late the generator sent the request compared with its schedule."""
        return None if self.sent is None else self.sent - self.intended_start

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["error_class"] = self.error_class.value if self.error_class else None
        row["token_source"] = self.token_source.value if self.token_source else None
        row["headers"] = json.dumps(self.headers) if self.headers else None
        return row
