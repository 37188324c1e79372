"""Build summary.json's model from scenario results."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from harness import __version__
from harness.checks.evaluate import CheckVerdict
from harness.cost.compute import RunCost
from harness.faults.timeline import FaultEvent
from harness.metrics.histogram import LatencyHistogram
from harness.metrics.summary import REPORTED_PERCENTILES, Measurements, token_method
from harness.reports.schema import (
    CheckResult,
    CostReport,
    Distribution,
    ErrorBudgetReport,
    FaultReport,
    LoadReport,
    MeasurementsReport,
    ModelCostReport,
    PhaseBudgetReport,
    PhaseReport,
    RateDistribution,
    RecoveryReport,
    RunSummary,
    ScenarioReport,
    SLOResult,
    StackReport,
    StageReport,
    SweepReport,
    Tokens,
    TrialReport,
    Verdict,
)
from harness.reports.scrape import key_counters
from harness.runner import RunSettings, ScenarioResult, SweepOutcome
from harness.scenario.load import LoadSpec
from harness.slo.budget import ErrorBudget
from harness.slo.evaluate import SLOVerdict
from harness.slo.phases import PhaseMeasurements
from harness.slo.recovery import Recovery

_VERDICT_ORDER: tuple[Verdict, ...] = ("pass", "warn", "fail", "error")


def _ms(value_s: float | None) -> float | None:
    return None if value_s is None else round(value_s * 1000, 3)


def distribution(histogram: LatencyHistogram) -> Distribution:
    return Distribution(
        count=histogram.count,
        min_ms=_ms(histogram.min),
        mean_ms=_ms(histogram.mean),
        max_ms=_ms(histogram.max),
        percentiles_ms={f"p{p:g}": _ms(histogram.percentile(p)) for p in REPORTED_PERCENTILES},
    )


def rate_distribution(histogram: LatencyHistogram, unit: str) -> RateDistribution:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return RateDistribution(
        count=histogram.count,
        unit=unit,
        min=rounded(histogram.min),
        mean=rounded(histogram.mean),
        max=rounded(histogram.max),
        percentiles={f"p{p:g}": rounded(histogram.percentile(p)) for p in REPORTED_PERCENTILES},
    )


def measurements_report(
    measurements: Measurements, scheduled_s: float, queued: int, trust: SLOVerdict | None = None
) -> MeasurementsReport:
    return MeasurementsReport(
        requests=measurements.requests,
        successes=measurements.successes,
        errors=measurements.errors,
        rate_limited=measurements.rate_limited,
        error_classes=measurements.error_classes,
        error_examples=measurements.error_examples,
        window_s=round(measurements.window_s, 6),
        scheduled_s=round(scheduled_s, 6),
        throughput_per_s=measurements.throughput_per_s,
        error_rate=measurements.error_rate,
        e2e_latency=distribution(measurements.e2e_latency),
        ttft=distribution(measurements.ttft),
        send_lag=distribution(measurements.send_lag),
        queued=queued,
        tokens=Tokens(
            prompt=measurements.prompt_tokens,
            completion=measurements.completion_tokens,
            method=token_method(measurements.token_sources),
        ),
        itl=distribution(measurements.itl),
        tpot=distribution(measurements.tpot),
        output_tokens_per_s=rate_distribution(measurements.output_tokens_per_s, "tokens/s"),
        goodput_per_s=measurements.goodput_per_s,
        good_requests=measurements.good,
        output_throughput_per_s=measurements.output_throughput_per_s,
        warmup_requests=measurements.warmup_requests,
        trustworthy=trust is None or trust.passed,
    )


def load_report(load: LoadSpec) -> LoadReport:
    stages = None
    if load.stages is not None:
        stages = [
            StageReport(duration_s=s.duration, rate_per_s=s.rate_per_s, ramp=s.ramp) for s in load.stages
        ]
    return LoadReport(
        model=load.model,
        rate_per_s=load.rate_per_s,
        users=load.users,
        duration_s=load.schedule_s,
        max_requests=load.max_requests,
        stream=load.stream,
        engine=load.engine,
        workers=load.workers,
        arrival=load.arrival,
        warmup_s=load.warmup,
        stages=stages,
        max_send_lag_p99_ms=round(load.max_send_lag_p99 * 1000, 3),
    )


def sweep_report(load: LoadSpec, outcome: SweepOutcome, run_dir: Path) -> SweepReport:
    assert load.sweep is not None
    trials = [
        TrialReport(
            rate_per_s=round(trial.rate_per_s, 6),
            passed=trial.passed,
            requests=trial.measurements.requests,
            throughput_per_s=trial.measurements.throughput_per_s,
            error_rate=trial.measurements.error_rate,
            e2e_p99_ms=_ms(trial.measurements.e2e_latency.percentile(99)),
            send_lag_p99_ms=_ms(trial.measurements.send_lag.percentile(99)),
            failed_objectives=[verdict.name for verdict in trial.verdicts if not verdict.passed],
            requests_file=_relative(trial.requests_file, run_dir),
        )
        for trial in outcome.trials
    ]
    return SweepReport(
        capacity_per_s=outcome.capacity_per_s,
        start_rate_per_s=load.sweep.start_rate_per_s,
        max_rate_per_s=load.sweep.max_rate_per_s,
        precision=load.sweep.precision,
        trials=trials,
    )


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def scenario_report(result: ScenarioResult, run_dir: Path, requests_file: Path | None) -> ScenarioReport:
    scenario = result.scenario
    load = scenario.load
    measurements = None
    if result.measurements is not None and result.load is not None:
        measurements = measurements_report(
            result.measurements, result.load.scheduled_s, result.load.queued, result.trust
        )
    requests_file = requests_file or result.requests_file
    stack = None
    if result.endpoints is not None:
        stack = StackReport(
            backend=result.backend,
            replicas=len(result.endpoints.gateway_urls),
            gateway_urls=list(result.endpoints.gateway_urls),
            logs={name: _relative(path, run_dir) for name, path in result.logs.items()},
        )
    return ScenarioReport(
        name=scenario.name,
        file=_relative(result.loaded.path, Path.cwd()),
        gate=scenario.gate,
        verdict=result.verdict,
        error=result.error,
        started_at=result.started_at,
        finished_at=result.finished_at,
        load=load_report(load),
        stack=stack,
        measurements=measurements,
        slos=[slo_result(verdict) for verdict in result.verdicts],
        trust=slo_result(result.trust) if result.trust is not None else None,
        checks=[check_result(check) for check in result.checks],
        faults=[fault_report(position, event, result) for position, event in enumerate(result.faults)],
        requests_file=_relative(requests_file, run_dir) if requests_file else None,
        series_file=_relative(result.series_file, run_dir) if result.series_file else None,
        sweep=sweep_report(load, result.sweep, run_dir) if result.sweep is not None else None,
        cost=cost_report(result.cost, result.measurements) if result.cost is not None else None,
        requests_parquet=_relative(result.requests_parquet, run_dir) if result.requests_parquet else None,
        gateway_metrics={name: _relative(path, run_dir) for name, path in result.metrics_files.items()},
        gateway_counters=_gateway_counters(result.metrics_files),
        eval=result.eval,
    )


def _gateway_counters(files: dict[str, Path]) -> dict[str, dict[str, dict[str, float]]]:
    return {
        name: key_counters(path.read_text(encoding="utf-8"))
        for name, path in files.items()
        if path.suffix == ".prom"
    }


def fault_report(position: int, event: FaultEvent, result: ScenarioResult) -> FaultReport:
    recovery = next((r for r in result.recoveries if r.fault == position), None)
    return FaultReport(
        **event.spec.describe(),
        applied_at_s=event.applied_at_s,
        removed_at_s=event.removed_at_s,
        restored_at_s=event.restored_at_s,
        phases=_phase_reports(position, result.phases),
        recovery=recovery_report(recovery) if recovery is not None else None,
    )


def _finite_or_none(value: float) -> float | None:
    return None if value in (math.inf, -math.inf) else round(value, 6)


def _phase_reports(position: int, phases: PhaseMeasurements | None) -> list[PhaseReport]:
    if phases is None:
        return []
    reports = []
    for window in phases.windows:
        measured = phases.get(window.fault, window.phase)
        if window.fault != position or measured is None or window.phase == "run":
            continue
        reports.append(
            PhaseReport(
                phase=window.phase,
                start_s=_finite_or_none(window.start_s),
                end_s=_finite_or_none(window.end_s),
                requests=measured.requests,
                errors=measured.errors,
                rate_limited=measured.rate_limited,
                error_rate=measured.error_rate,
                e2e_p95_ms=_ms(measured.e2e_latency.percentile(95)),
                ttft_p95_ms=_ms(measured.ttft.percentile(95)),
            )
        )
    return reports


def recovery_report(recovery: Recovery) -> RecoveryReport:
    band = recovery.band
    return RecoveryReport(
        recovered=recovery.recovered,
        recovery_time_ms=_ms(recovery.recovery_time_s),
        window_s=recovery.window_s,
        before_error_rate=band.before_error_rate if band else None,
        before_e2e_p95_ms=_ms(band.before_e2e_p95_s) if band else None,
        max_error_rate=band.max_error_rate if band else None,
        max_e2e_p95_ms=_ms(band.max_e2e_p95_s) if band else None,
        after_requests=recovery.after_requests,
        reason=recovery.reason,
    )


def _usd(value: float | None) -> float | None:
    return None if value is None else round(value, 9)


def cost_report(cost: RunCost, measurements: Measurements | None) -> CostReport:
    models = [
        ModelCostReport(
            model=model.model,
            input_usd_per_million_tokens=model.price.input_usd_per_million_tokens if model.price else None,
            output_usd_per_million_tokens=model.price.output_usd_per_million_tokens if model.price else None,
            price_source=model.price.source if model.price else None,
            requests=model.requests,
            prompt_tokens=model.prompt_tokens,
            completion_tokens=model.completion_tokens,
            cache_hits=model.cache_hits,
            cost_usd=_usd(model.cost_usd) if model.price else None,
            saved_usd=_usd(model.saved_usd) if model.price else None,
        )
        for model in cost.models.values()
    ]
    return CostReport(
        requests=cost.requests,
        total_usd=_usd(cost.total_usd),
        per_request_usd=_usd(cost.per_request_usd),
        per_1k_requests_usd=_usd(cost.per_1k_requests_usd),
        cache_hits=cost.cache_hits,
        cache_saved_usd=_usd(cost.saved_usd),
        token_method=token_method(measurements.token_sources) if measurements else "none",
        unpriced_models=cost.unpriced_models,
        models=models,
        request_models=list(cost.request_models),
    )


def check_result(check: CheckVerdict) -> CheckResult:
    return CheckResult(
        name=check.name,
        type=check.type,
        status="pass" if check.passed else "fail",
        detail=check.detail,
        gate=check.gate,
        line=check.line,
    )


def budget_report(budget: ErrorBudget) -> ErrorBudgetReport:
    return ErrorBudgetReport(
        objective=budget.objective,
        bad=budget.bad,
        total=budget.total,
        allowed_bad=round(budget.allowed_bad, 6),
        burn_rate=budget.burn_rate,
        remaining=budget.remaining,
    )


def slo_result(verdict: SLOVerdict) -> SLOResult:
    phase_budgets = [
        PhaseBudgetReport(fault=item.fault, phase=item.phase, **budget_report(item.budget).model_dump())
        for item in verdict.phase_budgets
        if item.phase != "run"
    ]
    return SLOResult(
        name=verdict.name,
        metric=verdict.metric,
        percentile=verdict.percentile,
        comparator=verdict.comparator,
        limit=verdict.limit,
        observed=verdict.observed,
        unit=verdict.unit,
        samples=verdict.samples,
        status=verdict.status.value,
        gate=verdict.gate,
        line=verdict.line,
        phase=verdict.phase,
        fault=verdict.fault,
        objective=verdict.objective,
        burn_rate=verdict.burn_rate,
        error_budget=budget_report(verdict.budget) if verdict.budget is not None else None,
        phase_budgets=phase_budgets,
        note=verdict.note,
    )


def run_verdict(verdicts: Sequence[Verdict]) -> Verdict:
    """Return the worst verdict: error, then fail, then warn, then pass."""
    return max(verdicts, key=_VERDICT_ORDER.index, default="pass")


def build_summary(
    settings: RunSettings,
    started_at: datetime,
    reports: Sequence[ScenarioReport],
    errors: Sequence[str] = (),
) -> RunSummary:
    verdicts = [report.verdict for report in reports]
    if errors:
        verdicts.append("error")
    return RunSummary(
        run_id=settings.run_id,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        slogate_version=__version__,
        backend=settings.backend,
        duration_scale=settings.duration_scale,
        verdict=run_verdict(verdicts),
        errors=list(errors),
        scenarios=list(reports),
    )
