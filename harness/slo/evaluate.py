"""Judge measurements against a scenario's SLOs: one verdict per objective, with its sample count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from harness.metrics.definitions import METRICS, MetricKind, format_metric_value
from harness.metrics.histogram import LatencyHistogram
from harness.metrics.summary import Measurements, RequestObjective
from harness.scenario.base import GateMode
from harness.scenario.slo import SLOSpec

TRUST_CHECK_PREFIX = "load generator on schedule: send_lag"
"""Name prefix of the verdict that says whether the load generator kept up with its schedule."""


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


_RATES = {
    "throughput": "throughput_per_s",
    "goodput": "goodput_per_s",
    "output_throughput": "output_throughput_per_s",
}


def _observe(
    slo: SLOSpec, measurements: Measurements, capacity_per_s: float | None
) -> tuple[float | None, int]:
    """Return the observed value in the report unit and the number of samples behind it."""
    if slo.metric == "cache_hit_ratio":
        return measurements.cache.hit_ratio, measurements.cache.looked_up
    if slo.metric == "cache_latency_saved":
        assert slo.percentile is not None
        saved = measurements.cache.latency_saved_s(slo.percentile)
        cache = measurements.cache
        return (round(saved * 1000, 3) if saved is not None else None), min(cache.hits, cache.misses)
    kind = METRICS[slo.metric].kind
    if kind in (MetricKind.LATENCY, MetricKind.REQUEST_RATE):
        histogram: LatencyHistogram = getattr(measurements, slo.metric)
        assert slo.percentile is not None
        value = histogram.percentile(slo.percentile)
        if value is None:
            return None, histogram.count
        if kind is MetricKind.REQUEST_RATE:
            return value, histogram.count
        # Microsecond resolution, as recorded, so float noise cannot fail a value equal to the limit.
        return round(value * 1000, 3), histogram.count
    if slo.metric == "error_rate":
        return measurements.error_rate, measurements.judged
    if slo.metric == "rate_limited":
        return measurements.rate_limited_ratio, measurements.requests
    if slo.metric in _RATES:
        return getattr(measurements, _RATES[slo.metric]), measurements.successes
    if slo.metric == "capacity":
        return capacity_per_s, measurements.requests if capacity_per_s is not None else 0
    raise AssertionError(f"no observation defined for metric {slo.metric!r}")


def request_objectives(slos: Sequence[SLOSpec]) -> list[RequestObjective]:
    """Return the per-request limits that decide which successful requests count in goodput."""
    return [
        RequestObjective(slo.metric, slo.comparator, slo.limit)
        for slo in slos
        if METRICS[slo.metric].per_request
    ]


def trust_verdict(measurements: Measurements, max_send_lag_p99_s: float, gate: GateMode) -> SLOVerdict:
    """Judge whether the load generator kept its schedule; a run where it fell behind fails its gate.

    Its measurements would describe a lighter load than the scenario asked for.
    """
    limit_ms = max_send_lag_p99_s * 1000
    name = f"{TRUST_CHECK_PREFIX} p99 <= {format_metric_value('send_lag', limit_ms)}"
    slo = SLOSpec.model_validate(
        {"metric": "send_lag", "percentile": 99, "max": f"{limit_ms:g}ms", "name": name}
    )
    verdict = evaluate_slo(slo, measurements, gate, None)
    if verdict.status is Status.NO_DATA and measurements.requests == 0:
        return verdict
    if verdict.status is Status.NO_DATA:
        # Every request waited for a slot or was dropped: the generator did not fall behind.
        return replace(verdict, status=Status.PASS)
    return verdict


def evaluate_slo(
    slo: SLOSpec,
    measurements: Measurements,
    gate: GateMode,
    line: int | None,
    capacity_per_s: float | None = None,
) -> SLOVerdict:
    observed, samples = _observe(slo, measurements, capacity_per_s)
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
