"""Judge measurements against a scenario's SLOs: one verdict per objective, with its sample count."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from harness.metrics.definitions import METRICS, MetricKind, format_metric_value
from harness.metrics.histogram import LatencyHistogram
from harness.metrics.summary import Measurements
from harness.scenario.base import GateMode
from harness.scenario.slo import SLOSpec


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no_data"
    """No sample to judge; counts as a failure, because a gate that cannot fail protects nothing."""


@dataclass(frozen=True)
class SLOVerdict:
    name: str
    metric: str
    percentile: float | None
    comparator: Literal["max", "min"]
    limit: float
    """In the metric's report unit: ms for latencies, a fraction for ratios, per second for rates."""
    observed: float | None
    unit: str
    samples: int
    status: Status
    gate: GateMode
    line: int | None
    """Line of the objective in the scenario file."""

    @property
    def passed(self) -> bool:
        return self.status is Status.PASS

    @property
    def blocks(self) -> bool:
        """True when this verdict fails a blocking gate."""
        return not self.passed and self.gate == "block"

    def format_value(self, value: float | None) -> str:
        return format_metric_value(self.metric, value)


def default_name(slo: SLOSpec) -> str:
    operator = "<=" if slo.comparator == "max" else ">="
    percentile = f" p{slo.percentile:g}" if slo.percentile is not None else ""
    limit = _limit_in_report_unit(slo)
    return f"{slo.metric}{percentile} {operator} {format_metric_value(slo.metric, limit)}"


def _limit_in_report_unit(slo: SLOSpec) -> float:
    if METRICS[slo.metric].kind is MetricKind.LATENCY:
        return slo.limit * 1000
    return slo.limit


def _observe(slo: SLOSpec, measurements: Measurements) -> tuple[float | None, int]:
    """Return the observed value in the report unit and the number of samples behind it."""
    if slo.metric in ("e2e_latency", "ttft"):
        histogram: LatencyHistogram = getattr(measurements, slo.metric)
        assert slo.percentile is not None
        value = histogram.percentile(slo.percentile)
        # Microsecond resolution, as recorded, so float noise cannot fail a value equal to the limit.
        return (round(value * 1000, 3) if value is not None else None), histogram.count
    if slo.metric == "error_rate":
        return measurements.error_rate, measurements.judged
    if slo.metric == "rate_limited":
        return measurements.rate_limited_ratio, measurements.requests
    if slo.metric == "cache_hit_ratio":
        return measurements.cache.hit_ratio, measurements.cache.looked_up
    if slo.metric == "cache_latency_saved":
        assert slo.percentile is not None
        saved = measurements.cache.latency_saved_s(slo.percentile)
        cache = measurements.cache
        return (round(saved * 1000, 3) if saved is not None else None), min(cache.hits, cache.misses)
    if slo.metric == "throughput":
        return measurements.throughput_per_s, measurements.successes
    raise AssertionError(f"no observation defined for metric {slo.metric!r}")


def evaluate_slo(slo: SLOSpec, measurements: Measurements, gate: GateMode, line: int | None) -> SLOVerdict:
    observed, samples = _observe(slo, measurements)
    limit = _limit_in_report_unit(slo)
    if observed is not None:
        # Ratios and rates as decimals: 7 errors in 1000 requests must meet a 0.7% limit exactly.
        observed, limit = round(observed, 12), round(limit, 12)
    if observed is None or samples == 0:
        status = Status.NO_DATA
    elif slo.comparator == "max":
        status = Status.PASS if observed <= limit else Status.FAIL
    else:
        status = Status.PASS if observed >= limit else Status.FAIL
    return SLOVerdict(
        name=slo.name or default_name(slo),
        metric=slo.metric,
        percentile=slo.percentile,
        comparator=slo.comparator,
        limit=limit,
        observed=observed,
        unit=METRICS[slo.metric].unit,
        samples=samples,
        status=status,
        gate=slo.gate or gate,
        line=line,
    )
