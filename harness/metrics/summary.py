"""Measurements of one load run, accumulated request by request so memory stays bounded.

``MeasurementsBuilder.add`` takes each finished record once; histograms and counters keep
what the SLOs and reports need, and the record itself can then be written out and dropped.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from harness.metrics.cache import CacheMeasurements
from harness.metrics.histogram import LatencyHistogram
from harness.metrics.records import RequestRecord, TokenSource

REPORTED_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9, 100.0)


@dataclass(frozen=True)
class RequestObjective:
    """A per-request limit taken from a latency or per-request-rate SLO, for goodput."""

    metric: str
    comparator: Literal["max", "min"]
    limit: float
    """In the metric's base unit: seconds, or tokens per second."""

    def met_by(self, record: RequestRecord) -> bool:
        """Return True when ``record`` meets the limit, or when the metric does not apply to it."""
        value = per_request_value(record, self.metric)
        if value is None:
            return True
        return value <= self.limit if self.comparator == "max" else value >= self.limit


def per_request_value(record: RequestRecord, metric: str) -> float | None:
    """Return one request's value of a per-request metric; ITL is the request's largest gap."""
    if metric == "e2e_latency":
        return record.e2e_latency
    if metric == "ttft":
        return record.ttft
    if metric == "tpot":
        return record.tpot
    if metric == "itl":
        return record.itl_max
    if metric == "output_tokens_per_s":
        return record.output_tokens_per_s
    raise ValueError(f"{metric!r} is not a per-request metric")


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
    """Actual send minus intended start, for requests sent without waiting for an in-flight slot."""
    prompt_tokens: int
    completion_tokens: int
    throughput_per_s: float | None
    """Successful responses per second between the first and the last successful response."""
    itl: LatencyHistogram = field(default_factory=LatencyHistogram)
    """One sample per output token after the first content chunk, of successful streams."""
    tpot: LatencyHistogram = field(default_factory=LatencyHistogram)
    """One sample per successful stream with at least two output tokens."""
    output_tokens_per_s: LatencyHistogram = field(default_factory=LatencyHistogram)
    """Per successful request: output tokens over E2E latency (values are tokens/s, not seconds)."""
    good: int = 0
    """Successful requests that met every per-request objective."""
    success_completion_tokens: int = 0
    """Completion tokens of successful requests."""
    warmup_requests: int = 0
    """Requests intended to start during the warm-up, left out of every other field."""
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

    @property
    def goodput_per_s(self) -> float | None:
        """Throughput times the share of successful requests that met every per-request objective."""
        if self.throughput_per_s is None or not self.successes:
            return None
        return self.throughput_per_s * self.good / self.successes

    @property
    def output_throughput_per_s(self) -> float | None:
        """Aggregate output tokens per second: throughput times mean completion tokens per success."""
        if self.throughput_per_s is None or not self.successes:
            return None
        return self.throughput_per_s * self.success_completion_tokens / self.successes


class MeasurementsBuilder:
    """Accumulates records into Measurements; warm-up records only count as warm-up."""

    def __init__(self, objectives: Sequence[RequestObjective] = ()) -> None:
        self.objectives = tuple(objectives)
        self.e2e, self.ttft, self.send_lag = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
        self.itl, self.tpot, self.tokens_per_s = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
        self.error_classes: Counter[str] = Counter()
        self.error_examples: dict[str, str] = {}
        self.token_sources: Counter[str] = Counter()
        self.requests = self.successes = self.errors = self.rate_limited = self.good = 0
        self.prompt_tokens = self.completion_tokens = self.success_completion_tokens = 0
        self.warmup_requests = 0
        self.first_start = math.inf
        self.last_end = -math.inf
        self.first_success_end = math.inf
        self.last_success_end = -math.inf
        self.cache = CacheMeasurements()

    def add(self, record: RequestRecord) -> None:
        if record.warmup:
            self.warmup_requests += 1
            return
        self.requests += 1
        self.cache.add(record)
        self.first_start = min(self.first_start, record.intended_start)
        if record.end is not None:
            self.last_end = max(self.last_end, record.end)
        if record.send_lag is not None and not record.queued:
            self.send_lag.record(record.send_lag)
        if record.ok:
            self._add_success(record)
        elif record.error_class is not None:
            self._add_failure(record)
        if record.token_source is not None:
            self.token_sources[record.token_source.value] += 1
            self.prompt_tokens += record.prompt_tokens or 0
            self.completion_tokens += record.completion_tokens or 0

    def _add_success(self, record: RequestRecord) -> None:
        self.successes += 1
        self.success_completion_tokens += record.completion_tokens or 0
        if record.end is not None:
            self.first_success_end = min(self.first_success_end, record.end)
            self.last_success_end = max(self.last_success_end, record.end)
        _record_optional(self.e2e, record.e2e_latency)
        _record_optional(self.ttft, record.ttft)
        _record_optional(self.tpot, record.tpot)
        _record_optional(self.tokens_per_s, record.output_tokens_per_s)
        for value, tokens in record.itl_samples():
            self.itl.record(value, tokens)
        if all(objective.met_by(record) for objective in self.objectives):
            self.good += 1

    def _add_failure(self, record: RequestRecord) -> None:
        assert record.error_class is not None
        self.error_classes[record.error_class.value] += 1
        self.error_examples.setdefault(record.error_class.value, record.error or "")
        if record.is_error:
            self.errors += 1
        else:
            self.rate_limited += 1

    def throughput_per_s(self) -> float | None:
        """Return (n - 1) / (last end - first end) over the n successful responses.

        Counting between completions leaves out the ramp before the first response and the drain
        after the schedule ends, so a short run is not penalised for its edges, while a server
        that falls behind still shows its lower completion rate.
        """
        if self.successes < 2 or self.last_success_end <= self.first_success_end:
            return None
        return (self.successes - 1) / (self.last_success_end - self.first_success_end)

    def build(self) -> Measurements:
        window = self.last_end - self.first_start if self.requests and self.last_end > -math.inf else 0.0
        return Measurements(
            requests=self.requests,
            successes=self.successes,
            errors=self.errors,
            rate_limited=self.rate_limited,
            error_classes=dict(self.error_classes),
            window_s=window,
            e2e_latency=self.e2e,
            ttft=self.ttft,
            send_lag=self.send_lag,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            throughput_per_s=self.throughput_per_s(),
            itl=self.itl,
            tpot=self.tpot,
            output_tokens_per_s=self.tokens_per_s,
            good=self.good,
            success_completion_tokens=self.success_completion_tokens,
            warmup_requests=self.warmup_requests,
            token_sources=dict(self.token_sources),
            error_examples=self.error_examples,
            cache=self.cache,
        )


def _record_optional(histogram: LatencyHistogram, value: float | None) -> None:
    if value is not None:
        histogram.record(value)


def summarize(records: Iterable[RequestRecord], objectives: Sequence[RequestObjective] = ()) -> Measurements:
    """Compute the run's measurements from its records."""
    builder = MeasurementsBuilder(objectives)
    for record in records:
        builder.add(record)
    return builder.build()


def token_method(sources: dict[str, int]) -> Literal["usage", "counted", "mixed", "none"]:
    """Describe how the token counts were obtained, for reports."""
    if not sources:
        return "none"
    if set(sources) == {TokenSource.USAGE.value}:
        return "usage"
    if set(sources) == {TokenSource.COUNTED.value}:
        return "counted"
    return "mixed"
