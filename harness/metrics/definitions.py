"""The metrics a scenario can set an SLO on: their names, kinds and units.

This table is the single source of metric names for the scenario schema, the SLO
evaluation and the reports, so a name that is not here is rejected when a scenario loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class MetricKind(StrEnum):
    LATENCY = "latency"
    """A per-request duration summarised by a percentile; thresholds are durations."""
    RATIO = "ratio"
    """A share of requests; thresholds are percentages."""
    RATE = "rate"
    """Events per second over the measured window; thresholds are rates."""
    REQUEST_RATE = "request_rate"
    """A per-request rate summarised by a percentile; thresholds are rates."""
    DURATION = "duration"
    """One duration per fault, such as its recovery time; thresholds are durations."""
    COST = "cost"
    """An amount in US dollars; thresholds are amounts."""


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    kind: MetricKind
    unit: str
    description: str

    per_request: bool = False
    """The metric has a value per request, so it takes part in goodput."""

    @property
    def needs_percentile(self) -> bool:
        return self.kind in (MetricKind.LATENCY, MetricKind.REQUEST_RATE)


METRICS: dict[str, MetricDefinition] = {
    definition.name: definition
    for definition in (
        MetricDefinition(
            "e2e_latency",
            MetricKind.LATENCY,
            "ms",
            "End-to-end latency: end of the response minus the request's intended start.",
            per_request=True,
        ),
        MetricDefinition(
            "ttft",
            MetricKind.LATENCY,
            "ms",
            "Time to first token: first content (or reasoning) delta of a stream minus the intended "
            "start. Streaming requests only.",
            per_request=True,
        ),
        MetricDefinition(
            "itl",
            MetricKind.LATENCY,
            "ms",
            "Inter-token latency, one sample per output token after the first content chunk: the gap "
            "before a chunk divided by the tokens it carries. Streaming requests only.",
            per_request=True,
        ),
        MetricDefinition(
            "tpot",
            MetricKind.LATENCY,
            "ms",
            "Time per output token: (E2E - TTFT) / (output tokens - 1), per streaming request with at "
            "least two output tokens.",
            per_request=True,
        ),
        MetricDefinition(
            "output_tokens_per_s",
            MetricKind.REQUEST_RATE,
            "tokens/s",
            "Per request: output tokens over E2E latency.",
            per_request=True,
        ),
        MetricDefinition(
            "send_lag",
            MetricKind.LATENCY,
            "ms",
            "Actual send minus intended start, of requests that did not wait for an in-flight slot: "
            "how far the load generator fell behind its schedule.",
        ),
        MetricDefinition(
            "error_rate",
            MetricKind.RATIO,
            "%",
            "Failed requests over the requests that were not rate-limited. A failure is a connect "
            "error, a timeout, a non-2xx status other than 429, an SSE error event, a truncated stream "
            "or a dropped request. 429s count apart, in rate_limited.",
        ),
        MetricDefinition(
            "availability",
            MetricKind.RATIO,
            "%",
            "Successful requests over the requests that were not rate-limited: 1 - error_rate.",
        ),
        MetricDefinition(
            "rate_limited",
            MetricKind.RATIO,
            "%",
            "Requests answered 429 over all requests.",
        ),
        MetricDefinition(
            "cache_hit_ratio",
            MetricKind.RATIO,
            "%",
            "Cache hits over the successful responses the gateway looked up in its cache (x-cache hit or "
            "miss); responses marked bypass are not counted.",
        ),
        MetricDefinition(
            "cache_latency_saved",
            MetricKind.LATENCY,
            "ms",
            "E2E latency of cache misses minus that of cache hits, at the given percentile.",
        ),
        MetricDefinition(
            "throughput",
            MetricKind.RATE,
            "req/s",
            "Successful responses per second between the first and the last successful response.",
        ),
        MetricDefinition(
            "goodput",
            MetricKind.RATE,
            "req/s",
            "Throughput times the share of successful requests that met every per-request objective "
            "of the scenario (latency and output_tokens_per_s objectives, each as a per-request limit).",
        ),
        MetricDefinition(
            "output_throughput",
            MetricKind.RATE,
            "tokens/s",
            "Aggregate output tokens per second: throughput times the mean output tokens of a "
            "successful request.",
        ),
        MetricDefinition(
            "capacity",
            MetricKind.RATE,
            "req/s",
            "Sweep only: the highest arrival rate whose trial met every other objective.",
        ),
        MetricDefinition(
            "recovery_time",
            MetricKind.DURATION,
            "ms",
            "Per fault: from its removal until the rolling error rate and p95 E2E latency are back "
            "inside the band of the phase before it.",
        ),
        MetricDefinition(
            "cost_per_1k_requests",
            MetricKind.COST,
            "USD",
            "Token cost of 1000 requests at the scenario's prices; cache hits cost nothing.",
        ),
        MetricDefinition(
            "cost_total",
            MetricKind.COST,
            "USD",
            "Token cost of every measured request at the scenario's prices; cache hits cost nothing.",
        ),
    )
}


def _trimmed(number: float, decimals: int) -> str:
    return f"{number:.{decimals}f}".rstrip("0").rstrip(".")


def format_latency_ms(value_ms: float) -> str:
    """Format milliseconds as 0.125ms below 1 ms, 86.9ms below a second and 1.5s above."""
    if value_ms < 1:
        return f"{_trimmed(value_ms, 3)}ms"
    if value_ms < 1000:
        return f"{_trimmed(value_ms, 1)}ms"
    return f"{value_ms / 1000:.4g}s"


def format_usd(value: float) -> str:
    """Format dollars with two decimals from $1 up and three significant digits below."""
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    decimals = max(2, 2 - math.floor(math.log10(abs(value))))
    return f"${value:.{decimals}f}"


def format_metric_value(metric: str, value: float | None) -> str:
    """Format a value in the metric's report unit (ms, fraction, per second, USD) for people."""
    if value is None:
        return "no data"
    kind = METRICS[metric].kind
    if kind in (MetricKind.LATENCY, MetricKind.DURATION):
        return format_latency_ms(value)
    if kind is MetricKind.COST:
        return format_usd(value)
    if kind is MetricKind.RATIO:
        return f"{value * 100:.4g}%"
    if METRICS[metric].unit == "tokens/s":
        return f"{_trimmed(value, 2)} tokens/s"
    return f"{_trimmed(value, 2)}/s"
