"""One record per request, with the timestamps every LLM metric is computed from.

All times are seconds on the monotonic clock of the load generator, relative to the start
of the run, so records from one run compare directly and never jump with the wall clock.
The per-request metrics (E2E, TTFT, ITL, TPOT, output tokens/s) are defined here, once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
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
    warmup: bool = False
    """Intended to start during the warm-up: sent and written out, but left out of measurements."""
    queued: bool = False
    """Open model: waited for an in-flight slot, so its send lag is the target's, not the generator's."""
    chunk_times: list[float] = field(default_factory=list)
    """Arrival of each SSE event that carried content or reasoning; not written to the CSV."""

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

    @property
    def tpot(self) -> float | None:
        """Time per output token after the first: (E2E - TTFT) / (output tokens - 1).

        Defined for streams with a TTFT and at least two output tokens.
        """
        e2e, ttft, tokens = self.e2e_latency, self.ttft, self.completion_tokens
        if e2e is None or ttft is None or tokens is None or tokens < 2:
            return None
        return (e2e - ttft) / (tokens - 1)

    @property
    def output_tokens_per_s(self) -> float | None:
        """Output tokens over E2E latency, for a request with output tokens and a positive E2E."""
        e2e, tokens = self.e2e_latency, self.completion_tokens
        if e2e is None or e2e <= 0 or not tokens:
            return None
        return tokens / e2e

    def chunk_token_counts(self) -> list[int]:
        """Return the output tokens of each content chunk.

        With counted tokens every chunk is one token. With usage, the server's total is split
        evenly over the chunks (the remainder to the earliest), because SSE chunks do not say
        how many tokens they carry.
        """
        chunks = len(self.chunk_times)
        total = self.completion_tokens
        if not chunks or total is None or self.token_source is not TokenSource.USAGE:
            return [1] * chunks
        share, remainder = divmod(total, chunks)
        return [share + (1 if position < remainder else 0) for position in range(chunks)]

    def itl_samples(self) -> list[tuple[float, int]]:
        """Return inter-token latencies as (seconds per token, tokens) pairs.

        The gap before a content chunk is spread evenly over the tokens it carries, so every
        token after the first chunk is one sample and the samples add up to the time from the
        first to the last content chunk. Tokens that arrived with the first chunk have no gap
        and give no sample; a chunk given no token merges its gap into the next chunk's.
        """
        samples: list[tuple[float, int]] = []
        if len(self.chunk_times) < 2:
            return samples
        counts = self.chunk_token_counts()
        previous = self.chunk_times[0]
        for arrived, tokens in zip(self.chunk_times[1:], counts[1:], strict=True):
            if tokens:
                samples.append(((arrived - previous) / tokens, tokens))
                previous = arrived
        return samples

    @property
    def itl_max(self) -> float | None:
        """The request's largest inter-token latency; its ITL value for goodput."""
        samples = self.itl_samples()
        return max(value for value, _ in samples) if samples else None

    def to_dict(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in CSV_COLUMNS if name != CHUNK_OFFSETS_COLUMN}
        row["error_class"] = self.error_class.value if self.error_class else None
        row["token_source"] = self.token_source.value if self.token_source else None
        row["headers"] = json.dumps(self.headers) if self.headers else None
        row[CHUNK_OFFSETS_COLUMN] = self.chunk_offsets_ms()
        return row

    def chunk_offsets_ms(self) -> str | None:
        """Return the content chunks' arrivals as milliseconds after the first, space-separated."""
        if not self.chunk_times:
            return None
        first = self.chunk_times[0]
        return " ".join(
            f"{(arrived - first) * 1000:.3f}".rstrip("0").rstrip(".") for arrived in self.chunk_times
        )


CHUNK_OFFSETS_COLUMN = "chunk_offsets_ms"
CSV_COLUMNS = [f.name for f in fields(RequestRecord) if f.name != "chunk_times"] + [CHUNK_OFFSETS_COLUMN]
"""Columns of the per-request CSV: every record field, with the chunk arrival times as offsets
from the first content chunk (which arrived at ``first_token``), so ITL can be computed again."""
