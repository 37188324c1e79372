"""Measurements of one load run, computed from its request records."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from harness.metrics.cache import CacheMeasurements, summarize_cache
from harness.metrics.histogram import LatencyHistogram
from harness.metrics.records import RequestRecord, TokenSource

REPORTED_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9, 100.0)


@dataclass
class Measurements:
    requests: int
    successes: int
    errors: int
    rate_limited: int
    error_classes: dict[str, int]
    window_s: float
    """From the first intended start to the last response end."""
    e2e_latency: LatencyHistogram
    """Successful requests only, so fast failures cannot flatter the latency."""
    ttft: LatencyHistogram
    """Successful streaming requests that delivered content."""
    send_lag: LatencyHistogram
    """Actual send minus intended start, for every request that was sent."""
    prompt_tokens: int
    completion_tokens: int
    throughput_per_s: float | None
    """Successful responses per second between the first and the last successful response."""
    token_sources: dict[str, int] = field(default_factory=dict)
    error_examples: dict[str, str] = field(default_factory=dict)
    """The first error message seen for each error class."""
    cache: CacheMeasurements = field(default_factory=CacheMeasurements)

    @property
    def judged(self) -> int:
        """Requests that did not get a 429 response: the denominator of the error rate."""
        return self.requests - self.rate_limited

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.judged if self.judged else None

    @property
    def rate_limited_ratio(self) -> float | None:
        return self.rate_limited / self.requests if self.requests else None


def summarize(records: Sequence[RequestRecord]) -> Measurements:
    """Compute the run's measurements from its records."""
    e2e, ttft, send_lag = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    error_classes: Counter[str] = Counter()
    error_examples: dict[str, str] = {}
    token_sources: Counter[str] = Counter()
    successes = errors = rate_limited = prompt_tokens = completion_tokens = 0

    for record in records:
        if record.send_lag is not None:
            send_lag.record(record.send_lag)
        if record.ok:
            successes += 1
            _record_latencies(record, e2e, ttft)
        elif record.error_class is not None:
            error_classes[record.error_class.value] += 1
            error_examples.setdefault(record.error_class.value, record.error or "")
            if record.is_error:
                errors += 1
            else:
                rate_limited += 1
        if record.token_source is not None:
            token_sources[record.token_source.value] += 1
            prompt_tokens += record.prompt_tokens or 0
            completion_tokens += record.completion_tokens or 0

    return Measurements(
        requests=len(records),
        successes=successes,
        errors=errors,
        rate_limited=rate_limited,
        error_classes=dict(error_classes),
        window_s=_window_s(records),
        e2e_latency=e2e,
        ttft=ttft,
        send_lag=send_lag,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        throughput_per_s=_completion_rate(records),
        token_sources=dict(token_sources),
        error_examples=error_examples,
        cache=summarize_cache(records),
    )


def _record_latencies(record: RequestRecord, e2e: LatencyHistogram, ttft: LatencyHistogram) -> None:
    if record.e2e_latency is not None:
        e2e.record(record.e2e_latency)
    if record.ttft is not None:
        ttft.record(record.ttft)


def _completion_rate(records: Sequence[RequestRecord]) -> float | None:
    """Return (n - 1) / (last end - first end) over the n successful responses.

    Counting between completions leaves out the ramp before the first response and the drain
    after the schedule ends, so a short run is not penalised for its edges, while a server
    that falls behind still shows its lower completion rate.
    """
    ends = sorted(record.end for record in records if record.ok and record.end is not None)
    if len(ends) < 2 or ends[-1] <= ends[0]:
        return None
    return (len(ends) - 1) / (ends[-1] - ends[0])


def _window_s(records: Sequence[RequestRecord]) -> float:
    ends = [record.end for record in records if record.end is not None]
    if not records or not ends:
        return 0.0
    return max(ends) - min(record.intended_start for record in records)


def token_method(sources: dict[str, int]) -> Literal["usage", "counted", "mixed", "none"]:
    """Describe how the token counts were obtained, for reports."""
    if not sources:
        return "none"
    if set(sources) == {TokenSource.USAGE.value}:
        return "usage"
    if set(sources) == {TokenSource.COUNTED.value}:
        return "counted"
    return "mixed"
