"""Compare a run with a baseline run, objective by objective, on both runs' raw samples.

A difference is a regression only when it is significant (p below ``significance``) and larger
than the tolerance in the worse direction. For latency, the objective's percentile must be up by
more than ``latency_tolerance`` of the baseline's value (Mann-Whitney U on the samples, with
Cliff's delta as effect size). A ratio must be worse by more than ``ratio_tolerance`` percentage
points, and a rate lower or a cost higher by more than ``rate_tolerance`` of the baseline's mean
(bootstrap of the difference of means). Values measured once per run (recovery time,
capacity) are shown but not tested.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.cost.prices import Price
from harness.metrics.definitions import METRICS, MetricKind
from harness.metrics.histogram import nearest_rank
from harness.metrics.records import RequestRecord
from harness.metrics.stored import read_requests_csv
from harness.metrics.summary import RequestObjective
from harness.reports import samples
from harness.reports.eval_baseline import compare_evals, regressed_scorers
from harness.reports.schema import (
    BaselineDelta,
    BaselineReport,
    RunSummary,
    ScenarioReport,
    SLOResult,
    Verdict,
)
from harness.reports.statistics import bootstrap_mean_difference, rank_test
from harness.scenario.base import GateMode
from harness.scenario.gates import BaselineSpec

HIGHER_IS_WORSE_RATIOS = ("error_rate", "rate_limited")
DeltaStatus = Literal["regression", "improvement", "no_change"]


class BaselineError(Exception):
    """The baseline cannot be read: a missing file or folder, or not a slogate summary.json."""


def load_summary(path: Path) -> tuple[RunSummary, Path]:
    """Read a run's summary.json, given the file or its run folder; return it with the run folder."""
    summary_path = path / "summary.json" if path.is_dir() else path
    if not summary_path.is_file():
        raise BaselineError(f"no summary.json at {path}: give a run folder or its summary.json")
    try:
        summary = RunSummary.model_validate_json(summary_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        first = str(exc).splitlines()[:3]
        raise BaselineError(f"{summary_path} is not a slogate summary.json: {' '.join(first)}") from None
    return summary, summary_path.parent


@dataclass(frozen=True)
class RunSide:
    """One run of a comparison: its scenario report and the requests behind it."""

    report: ScenarioReport
    run_dir: Path
    records: list[RequestRecord]

    @classmethod
    def read(cls, report: ScenarioReport, run_dir: Path) -> RunSide:
        # NOTE: keeps every measured record in memory, chunk times included: about 2.5 KB per
        # streamed request of 64 tokens (measured with tracemalloc), so 100000 requests on each
        # side take about 500 MB.
        if report.requests_file is None:
            return cls(report, run_dir, [])
        path = run_dir / report.requests_file
        if not path.is_file():
            raise BaselineError(f"the per-request CSV {path} of scenario {report.name} is missing")
        return cls(report, run_dir, [r for r in read_requests_csv(path) if not r.warmup])

    def in_phase(self, slo: SLOResult) -> list[RequestRecord]:
        """Return the measured requests of the objective's phase, by intended start."""
        if slo.phase == "run" or slo.fault is None:
            return self.records
        if slo.fault >= len(self.report.faults):
            return []
        fault = self.report.faults[slo.fault]
        if fault.applied_at_s is None:
            return []
        start, end = {
            "before": (-math.inf, fault.applied_at_s),
            "during": (fault.applied_at_s, fault.removed_at_s or math.inf),
            "after": (fault.removed_at_s or math.inf, math.inf),
        }[slo.phase]
        return [r for r in self.records if start <= r.intended_start < end]


def compare_scenario(
    current: RunSide, baseline: RunSide, spec: BaselineSpec, gate: GateMode, source: str, run_id: str
) -> ScenarioReport:
    """Return ``current.report`` with a baseline delta on each objective and its verdict updated."""
    slos = [
        slo.model_copy(update={"baseline": compare_slo(slo, current, baseline, spec)})
        for slo in current.report.slos
    ]
    regressions = [
        slo.name for slo in slos if slo.baseline is not None and slo.baseline.status == "regression"
    ]
    evals = compare_evals(current.report.eval, baseline.report.eval)
    if evals is not None:
        regressions += [f"eval {name}" for name in regressed_scorers(evals)]
    baseline_report = BaselineReport(
        source=source,
        run_id=run_id,
        gate=gate,
        significance=spec.significance,
        latency_tolerance=spec.latency_tolerance,
        ratio_tolerance=spec.ratio_tolerance,
        rate_tolerance=spec.rate_tolerance,
        regressions=regressions,
    )
    report = current.report.model_copy(update={"slos": slos, "baseline": baseline_report, "eval": evals})
    return report.model_copy(update={"verdict": verdict_with_baseline(report)})


def missing_baseline(
    report: ScenarioReport, source: str, run_id: str, gate: GateMode, reason: str
) -> ScenarioReport:
    """Return ``report`` noting why it has no comparison; a run cannot be judged against nothing, so
    a blocking baseline fails it."""
    spec = BaselineSpec()
    baseline_report = BaselineReport(
        source=source,
        run_id=run_id,
        gate=gate,
        significance=spec.significance,
        latency_tolerance=spec.latency_tolerance,
        ratio_tolerance=spec.ratio_tolerance,
        rate_tolerance=spec.rate_tolerance,
        regressions=[],
        error=reason,
    )
    report = report.model_copy(update={"baseline": baseline_report})
    return report.model_copy(update={"verdict": verdict_with_baseline(report)})


def verdict_with_baseline(report: ScenarioReport) -> Verdict:
    baseline = report.baseline
    if report.verdict == "error" or baseline is None or (not baseline.regressions and baseline.error is None):
        return report.verdict
    if baseline.gate == "block":
        return "fail"
    return "warn" if report.verdict == "pass" else report.verdict


def compare_slo(slo: SLOResult, current: RunSide, baseline: RunSide, spec: BaselineSpec) -> BaselineDelta:
    metric = slo.metric
    now, then = current.in_phase(slo), baseline.in_phase(slo)
    kind = METRICS[metric].kind
    if kind in (MetricKind.LATENCY, MetricKind.REQUEST_RATE) and metric != "cache_latency_saved":
        assert slo.percentile is not None
        return compare_latency(
            samples.latency_samples(now, metric),
            samples.latency_samples(then, metric),
            slo.percentile,
            slo.comparator,
            spec,
            METRICS[metric].unit,
            scale=1000 if kind is MetricKind.LATENCY else 1,
        )
    if metric in samples.BAD_INDICATORS:
        return compare_ratio(
            samples.bad_indicators(now, metric), samples.bad_indicators(then, metric), metric, spec, slo.name
        )
    if metric in samples.PER_SECOND_METRICS:
        return compare_means(
            samples.per_second_counts(now, metric, request_objectives(current.report)),
            samples.per_second_counts(then, metric, request_objectives(baseline.report)),
            higher_is_worse=False,
            spec=spec,
            unit=METRICS[metric].unit,
            seed_text=slo.name,
        )
    if metric in samples.COST_METRICS:
        return compare_costs(slo, now, then, current.report, baseline.report, spec)
    return untested(slo, baseline.report)


def compare_latency(
    current: Sequence[float],
    baseline: Sequence[float],
    percentile: float,
    comparator: str,
    spec: BaselineSpec,
    unit: str,
    scale: float = 1000,
) -> BaselineDelta:
    """Compare two samples of a per-request metric at ``percentile``; with max, higher is worse."""
    now, then = _percentile(current, percentile), _percentile(baseline, percentile)
    delta = BaselineDelta(
        method="mann-whitney",
        baseline_samples=len(baseline),
        current_samples=len(current),
        baseline_value=None if then is None else round(then * scale, 3),
        current_value=None if now is None else round(now * scale, 3),
        unit=unit,
        change=None,
        change_kind="relative",
        p_value=None,
        tolerance=spec.latency_tolerance,
        status="not_tested",
    )
    if now is None or then is None or then <= 0:
        return delta.model_copy(update={"note": "no samples on one side"})
    change = now / then - 1
    test = rank_test(current, baseline)
    worse_p, better_p = (
        (test.p_greater, test.p_less) if comparator == "max" else (test.p_less, test.p_greater)
    )
    worse_change = change if comparator == "max" else -change
    status = _status(worse_p, better_p, worse_change, spec.latency_tolerance, spec.significance)
    return delta.model_copy(
        update={
            "change": round(change, 6),
            "p_value": _rounded_p(worse_p),
            "effect_size": round(test.cliffs_delta, 4),
            "status": status,
        }
    )


def compare_ratio(
    current: Sequence[float], baseline: Sequence[float], metric: str, spec: BaselineSpec, seed_text: str
) -> BaselineDelta:
    """Compare bad-occurrence indicators of a ratio metric; the values shown are the metric's own."""
    higher_is_worse = metric in HIGHER_IS_WORSE_RATIOS

    def value(indicators: Sequence[float]) -> float | None:
        if not indicators:
            return None
        bad = sum(indicators) / len(indicators)
        return round(bad if higher_is_worse else 1 - bad, 9)

    delta = BaselineDelta(
        method="bootstrap",
        baseline_samples=len(baseline),
        current_samples=len(current),
        baseline_value=value(baseline),
        current_value=value(current),
        unit="%",
        change=None,
        change_kind="absolute",
        p_value=None,
        tolerance=spec.ratio_tolerance,
        status="not_tested",
    )
    if not current or not baseline:
        return delta.model_copy(update={"note": "no samples on one side"})
    interval = bootstrap_mean_difference(current, baseline, seed_text)
    sign = 1 if higher_is_worse else -1
    status = _status(
        interval.p_greater, interval.p_less, interval.difference, spec.ratio_tolerance, spec.significance
    )
    low, high = sorted((sign * interval.low, sign * interval.high))
    return delta.model_copy(
        update={
            "change": round(sign * interval.difference, 9),
            "ci_low": round(low, 9),
            "ci_high": round(high, 9),
            "p_value": _rounded_p(interval.p_greater),
            "status": status,
        }
    )


def compare_means(
    current: Sequence[float],
    baseline: Sequence[float],
    *,
    higher_is_worse: bool,
    spec: BaselineSpec,
    unit: str,
    seed_text: str,
    scale: float = 1.0,
    note: str | None = None,
) -> BaselineDelta:
    """Compare the means of two samples, relative to the baseline's mean."""
    then_mean = sum(baseline) / len(baseline) if baseline else None
    now_mean = sum(current) / len(current) if current else None
    delta = BaselineDelta(
        method="bootstrap",
        baseline_samples=len(baseline),
        current_samples=len(current),
        baseline_value=None if then_mean is None else round(then_mean * scale, 9),
        current_value=None if now_mean is None else round(now_mean * scale, 9),
        unit=unit,
        change=None,
        change_kind="relative",
        p_value=None,
        tolerance=spec.rate_tolerance,
        status="not_tested",
        note=note,
    )
    if now_mean is None or then_mean is None or then_mean == 0:
        return delta.model_copy(update={"note": "no samples on one side, or a baseline mean of 0"})
    interval = bootstrap_mean_difference(current, baseline, seed_text)
    worse_p, better_p = (
        (interval.p_greater, interval.p_less) if higher_is_worse else (interval.p_less, interval.p_greater)
    )
    change = interval.difference / then_mean
    worse_change = change if higher_is_worse else -change
    status = _status(worse_p, better_p, worse_change, spec.rate_tolerance, spec.significance)
    return delta.model_copy(
        update={
            "change": round(change, 6),
            "ci_low": round(interval.low / then_mean, 6),
            "ci_high": round(interval.high / then_mean, 6),
            "p_value": _rounded_p(worse_p),
            "status": status,
        }
    )


def compare_costs(
    slo: SLOResult,
    now: list[RequestRecord],
    then: list[RequestRecord],
    current: ScenarioReport,
    baseline: ScenarioReport,
    spec: BaselineSpec,
) -> BaselineDelta:
    current_costs = _costs(now, current)
    baseline_costs = _costs(then, baseline)
    if current_costs is None or baseline_costs is None:
        return untested(slo, baseline, "a model of one run has no price")
    return compare_means(
        current_costs,
        baseline_costs,
        higher_is_worse=True,
        spec=spec,
        unit="USD",
        seed_text=slo.name,
        scale=1000,
        note="compared per 1000 requests, whatever the metric, since a total grows with the request count",
    )


def _costs(records: list[RequestRecord], report: ScenarioReport) -> list[float] | None:
    cost = report.cost
    if cost is None:
        return None
    prices = {
        model.model: Price(model.input_usd_per_million_tokens, model.output_usd_per_million_tokens, "")
        for model in cost.models
        if model.input_usd_per_million_tokens is not None and model.output_usd_per_million_tokens is not None
    }
    return samples.cost_samples(records, prices, cost.request_models)


def untested(slo: SLOResult, baseline: ScenarioReport, note: str | None = None) -> BaselineDelta:
    """Show a value measured once per run next to the baseline's, without a test."""
    then = next((other for other in baseline.slos if other.name == slo.name), None)
    return BaselineDelta(
        method="none",
        baseline_samples=then.samples if then else 0,
        current_samples=slo.samples,
        baseline_value=then.observed if then else None,
        current_value=slo.observed,
        unit=slo.unit,
        change=None,
        change_kind="absolute",
        p_value=None,
        tolerance=None,
        status="not_tested",
        note=note or "one value per run: shown, not tested",
    )


def request_objectives(report: ScenarioReport) -> list[RequestObjective]:
    """Rebuild the per-request objectives that decide goodput, from a report's run-wide objectives."""
    objectives = []
    for slo in report.slos:
        definition = METRICS.get(slo.metric)
        if definition is None or not definition.per_request or slo.phase != "run":
            continue
        limit = slo.limit / 1000 if definition.kind is MetricKind.LATENCY else slo.limit
        objectives.append(RequestObjective(slo.metric, slo.comparator, limit))
    return objectives


def _status(
    worse_p: float, better_p: float, worse_change: float, tolerance: float, significance: float
) -> DeltaStatus:
    if worse_p < significance and worse_change > tolerance:
        return "regression"
    if better_p < significance and -worse_change > tolerance:
        return "improvement"
    return "no_change"


def _percentile(values: Sequence[float], percentile: float) -> float | None:
    """Nearest rank over the exact values."""
    if not values:
        return None
    return sorted(values)[nearest_rank(percentile, len(values)) - 1]


def _rounded_p(p: float) -> float:
    return float(f"{p:.3g}")
