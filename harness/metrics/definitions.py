"""The metrics a scenario can set an SLO on: their names, kinds and units.

This table is the single source of metric names for the scenario schema, the SLO
evaluation and the reports, so a name that is not here is rejected when a scenario loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MetricKind(StrEnum):
    LATENCY = "latency"
    """A per-request duration summarised by a percentile; thresholds are durations."""
    RATIO = "ratio"
    """A share of requests; thresholds are percentages."""
    RATE = "rate"
    """Events per second over the measured window; thresholds are rates."""


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    kind: MetricKind
    unit: str
    description: str

    @property
    def needs_percentile(self) -> bool:
        return self.kind is MetricKind.LATENCY


METRICS: dict[str, MetricDefinition] = {
    definition.name: definition
    for definition in (
        MetricDefinition(
            "e2e_latency",
            MetricKind.LATENCY,
            "ms",
            "End-to-end latency: end of the response minus the request's intended start.",
        ),
        MetricDefinition(
            "ttft",
            MetricKind.LATENCY,
            "ms",
            "Time to first token: first content delta of a stream minus the intended start. "
            "Streaming requests only.",
        ),
        MetricDefinition(
            "error_rate",
            MetricKind.RATIO,
            "%",
            "Failed requests over all requests. A failure is a transport error, a timeout, a non-2xx "
            "status other than 429, an SSE error event or a truncated stream; 429s count apart.",
        ),
        MetricDefinition(
            "throughput",
            MetricKind.RATE,
            "req/s",
            "Successful requests per second over the measured window.",
        ),
    )
}
