"""Build summary.json's model from scenario results."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from harness import __version__
from harness.metrics.histogram import LatencyHistogram
from harness.metrics.summary import REPORTED_PERCENTILES, Measurements, token_method
from harness.reports.schema import (
    CheckResult,
    Distribution,
    FaultReport,
    LoadReport,
    MeasurementsReport,
    RunSummary,
    ScenarioReport,
    SLOResult,
    StackReport,
    Tokens,
    Verdict,
)
from harness.runner import RunSettings, ScenarioResult

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


def measurements_report(measurements: Measurements, scheduled_s: float, queued: int) -> MeasurementsReport:
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
        measurements = measurements_report(result.measurements, result.load.scheduled_s, result.load.queued)
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
        load=LoadReport(
            model=load.model,
            rate_per_s=load.rate_per_s,
            users=load.users,
            duration_s=load.duration,
            max_requests=load.max_requests,
            stream=load.stream,
        ),
        stack=stack,
        measurements=measurements,
        slos=[
            SLOResult(
                name=v.name,
                metric=v.metric,
                percentile=v.percentile,
                comparator=v.comparator,
                limit=v.limit,
                observed=v.observed,
                unit=v.unit,
                samples=v.samples,
                status=v.status.value,
                gate=v.gate,
                line=v.line,
            )
            for v in result.verdicts
        ],
        checks=[
            CheckResult(
                name=check.name,
                type=check.type,
                status="pass" if check.passed else "fail",
                detail=check.detail,
                gate=check.gate,
                line=check.line,
            )
            for check in result.checks
        ],
        faults=[
            FaultReport(
                **event.spec.describe(), applied_at_s=event.applied_at_s, removed_at_s=event.removed_at_s
            )
            for event in result.faults
        ],
        requests_file=_relative(requests_file, run_dir) if requests_file else None,
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
