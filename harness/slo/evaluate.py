"""Judge measurements against a scenario's SLOs: one verdict per objective, with its sample count.

An objective may be scoped to a phase around a fault. Ratio and percentile objectives also get
an error budget and a burn rate, for the run and for every phase.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal

from harness.cost.compute import RunCost
from harness.metrics.definitions import METRICS, MetricKind, format_metric_value
from harness.metrics.histogram import LatencyHistogram
from harness.metrics.summary import Measurements, RequestObjective
from harness.scenario.base import GateMode
from harness.scenario.slo import AnySLO, OpenSLOSpec, Phase, SLOSpec
from harness.slo.budget import ErrorBudget, error_budget, objective_share
from harness.slo.phases import PhaseMeasurements
from harness.slo.recovery import Recovery

TRUST_CHECK_PREFIX = "load generator on schedule: send_lag"
"""Name prefix of the verdict that says whether the load generator kept up with its schedule."""


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "no_data"
    """No sample to judge; counts as a failure, because a gate that cannot fail protects nothing."""


@dataclass
class SLOContext:
    """Data that objectives are judged on besides the run's measurements."""

    phases: PhaseMeasurements | None = None
    recoveries: list[Recovery] = field(default_factory=list)
    cost: RunCost | None = None
    capacity_per_s: float | None = None
    fault_names: list[str | None] = field(default_factory=list)

    def fault_label(self, fault: int | None) -> str:
        if fault is None:
            return "fault"
        name = self.fault_names[fault] if fault < len(self.fault_names) else None
        return name or f"fault {fault}"


@dataclass(frozen=True)
class PhaseBudget:
    fault: int
    phase: Phase
    budget: ErrorBudget


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
    phase: Phase = "run"
    fault: int | None = None
    """The fault the phase (or recovery time) belongs to, by position."""
    objective: float | None = None
    """The share of good occurrences the objective requires, where it is a share."""
    budget: ErrorBudget | None = None
    """The error budget in the objective's own phase."""
    phase_budgets: tuple[PhaseBudget, ...] = ()
    """Run-wide objectives: the error budget in each phase of each fault."""
    note: str | None = None
    """Explanation of a missing observed value, such as a recovery that never came."""

    @property
    def burn_rate(self) -> float | None:
        return self.budget.burn_rate if self.budget is not None else None

    @property
    def passed(self) -> bool:
        return self.status is Status.PASS

    @property
    def blocks(self) -> bool:
        """True when this verdict fails a blocking gate."""
        return not self.passed and self.gate == "block"

    def format_value(self, value: float | None) -> str:
        return format_metric_value(self.metric, value)


def default_name(slo: AnySLO, context: SLOContext | None = None, fault: int | None = None) -> str:
    """Name an objective as people read it, such as ``ttft p95 <= 300ms [during redis-kill]``."""
    context = context or SLOContext()
    operator = "<=" if slo.comparator == "max" else ">="
    limit = format_metric_value(slo.metric, _limit_in_report_unit(slo))
    if slo.metric == "recovery_time":
        return f"recovery_time after {context.fault_label(fault)} {operator} {limit}"
    if isinstance(slo, OpenSLOSpec) and slo.thresholdMetric is not None:
        base = f"{slo.metric} {operator} {limit} for {slo.target * 100:g}% of requests"
    else:
        percentile = f" p{slo.percentile:g}" if slo.percentile is not None else ""
        base = f"{slo.metric}{percentile} {operator} {limit}"
    if slo.phase == "run":
        return base
    return f"{base} [{slo.phase} {context.fault_label(fault)}]"


def _limit_in_report_unit(slo: AnySLO) -> float:
    if METRICS[slo.metric].kind in (MetricKind.LATENCY, MetricKind.DURATION):
        return slo.limit * 1000
    return slo.limit


_RATES = {
    "throughput": "throughput_per_s",
    "goodput": "goodput_per_s",
    "output_throughput": "output_throughput_per_s",
}


def _observe(
    slo: AnySLO, measurements: Measurements, capacity_per_s: float | None
) -> tuple[float | None, int]:
    """Return the observed value in the report unit and the number of samples behind it."""
    if slo.metric == "availability":
        rate = measurements.error_rate
        return (None if rate is None else 1 - rate), measurements.judged
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


def request_objectives(slos: Sequence[AnySLO]) -> list[RequestObjective]:
    """Return the per-request limits that decide which successful requests count in goodput.

    Only run-wide objectives count: a limit meant for one phase does not make a request bad.
    """
    return [
        RequestObjective(slo.metric, slo.comparator, slo.limit)
        for slo in slos
        if METRICS[slo.metric].per_request and slo.phase == "run"
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


def _compare(observed: float | None, samples: int, comparator: str, limit: float) -> Status:
    if observed is None or samples == 0:
        return Status.NO_DATA
    if comparator == "max":
        return Status.PASS if observed <= limit else Status.FAIL
    return Status.PASS if observed >= limit else Status.FAIL


def evaluate_slo(
    slo: AnySLO,
    measurements: Measurements,
    gate: GateMode,
    line: int | None,
    capacity_per_s: float | None = None,
    *,
    context: SLOContext | None = None,
    fault: int | None = None,
) -> SLOVerdict:
    """Judge one objective on the run, or on its phase of ``fault``, with phases and cost from ``context``."""
    context = context or SLOContext(capacity_per_s=capacity_per_s)
    scoped, note = _scoped_measurements(slo, measurements, context, fault)
    observed, samples, status, extra_note = _judge(slo, scoped, context, fault)
    budget = None
    if scoped is not None:
        budget = error_budget(slo.metric, slo.comparator, slo.limit, slo.percentile, scoped)
    return SLOVerdict(
        name=slo.name or default_name(slo, context, fault),
        metric=slo.metric,
        percentile=slo.percentile,
        comparator=slo.comparator,
        limit=round(_limit_in_report_unit(slo), 12),
        observed=observed,
        unit=METRICS[slo.metric].unit,
        samples=samples,
        status=status,
        gate=slo.gate or gate,
        line=line,
        phase=slo.phase,
        fault=fault if slo.phase != "run" or slo.metric == "recovery_time" else None,
        objective=objective_share(slo.metric, slo.comparator, slo.limit, slo.percentile),
        budget=budget,
        phase_budgets=_phase_budgets(slo, context) if slo.phase == "run" else (),
        note=note or extra_note,
    )


def _scoped_measurements(
    slo: AnySLO, measurements: Measurements, context: SLOContext, fault: int | None
) -> tuple[Measurements | None, str | None]:
    if slo.phase == "run":
        return measurements, None
    phases = context.phases
    scoped = phases.get(fault, slo.phase) if phases is not None and fault is not None else None
    if scoped is None:
        return None, f"{context.fault_label(fault)} was never applied, so its phases have no requests"
    return scoped, None


def _judge(
    slo: AnySLO, measurements: Measurements | None, context: SLOContext, fault: int | None
) -> tuple[float | None, int, Status, str | None]:
    """Return the observed value (report unit), its samples, the status and a note."""
    if slo.metric == "recovery_time":
        return _judge_recovery(slo, context, fault)
    if METRICS[slo.metric].kind is MetricKind.COST:
        return _judge_cost(slo, context.cost)
    if measurements is None:
        return None, 0, Status.NO_DATA, None
    observed, samples = _observe(slo, measurements, context.capacity_per_s)
    limit = round(_limit_in_report_unit(slo), 12)
    if observed is not None:
        # Ratios and rates as decimals: 7 errors in 1000 requests must meet a 0.7% limit exactly.
        observed = round(observed, 12)
    return observed, samples, _compare(observed, samples, slo.comparator, limit), None


def _judge_recovery(
    slo: AnySLO, context: SLOContext, fault: int | None
) -> tuple[float | None, int, Status, str | None]:
    recovery = next((r for r in context.recoveries if r.fault == fault), None)
    if recovery is None:
        return None, 0, Status.NO_DATA, f"no recovery measured for {context.fault_label(fault)}"
    if recovery.recovery_time_s is None:
        # Not recovered by the end of the load is a failure; a run that could not tell is no data.
        status = Status.FAIL if recovery.measurable else Status.NO_DATA
        return None, recovery.after_requests, status, recovery.reason
    observed = round(recovery.recovery_time_s * 1000, 3)
    limit = round(_limit_in_report_unit(slo), 12)
    return observed, recovery.after_requests, _compare(observed, 1, slo.comparator, limit), None


def _judge_cost(slo: AnySLO, cost: RunCost | None) -> tuple[float | None, int, Status, str | None]:
    if cost is None:
        return None, 0, Status.NO_DATA, "the run's cost was not computed"
    observed = cost.per_1k_requests_usd if slo.metric == "cost_per_1k_requests" else cost.total_usd
    note = None
    if cost.unpriced_models:
        note = f"no price for model(s) {', '.join(cost.unpriced_models)}: add them under cost.prices"
    if observed is not None:
        observed = round(observed, 12)
    status = _compare(observed, cost.requests, slo.comparator, round(slo.limit, 12))
    return observed, cost.requests, status, note


def _phase_budgets(slo: AnySLO, context: SLOContext) -> tuple[PhaseBudget, ...]:
    phases = context.phases
    if phases is None:
        return ()
    budgets = []
    for (fault, phase), measurements in phases.measurements.items():
        budget = error_budget(slo.metric, slo.comparator, slo.limit, slo.percentile, measurements)
        if budget is not None:
            budgets.append(PhaseBudget(fault, phase, budget))
    return tuple(budgets)
