"""Sentences that explain a verdict: why an SLO failed and why requests failed."""

from __future__ import annotations

from harness.metrics.definitions import format_metric_value
from harness.reports.schema import CheckResult, MeasurementsReport, ScenarioReport, SLOResult

UNTRUSTWORTHY = (
    "the load generator fell behind its schedule, so the run is untrustworthy: it sent a lighter load "
    "than the scenario asked for. Give the generator more CPU, lower the rate, or use engine: locust "
    "with more workers."
)


def describe_slo(slo: SLOResult) -> str:
    """Return, for example, ``fail: observed 300ms, limit max 250ms, 1200 samples``."""
    observed = format_metric_value(slo.metric, slo.observed)
    if slo.observed is None:
        observed = "no data (0 samples)"
    limit = format_metric_value(slo.metric, slo.limit)
    return f"{slo.status}: observed {observed}, limit {slo.comparator} {limit}, {slo.samples} samples"


def blocking_failures(report: ScenarioReport) -> list[SLOResult | CheckResult]:
    """Return the failed blocking objectives and checks, and the failed schedule check of the generator."""
    objectives = [*report.slos, *([report.trust] if report.trust is not None else [])]
    failures: list[SLOResult | CheckResult] = [
        s for s in objectives if s.status != "pass" and s.gate == "block"
    ]
    return failures + [check for check in report.checks if check.status != "pass" and check.gate == "block"]


def describe_failed_scenario(report: ScenarioReport) -> str:
    """Explain a failed scenario: one summary line first (pytest's short summary shows it), then details."""
    failures = blocking_failures(report)
    lines = [f"{len(failures)} blocking gate(s) failed: {', '.join(failure.name for failure in failures)}"]
    for failure in failures:
        place = f"{report.file}:{failure.line}" if failure.line else report.file
        if isinstance(failure, CheckResult):
            lines.append(f"{place}: check failed: {failure.name}: {failure.detail}")
            continue
        lines.append(f"{place}: SLO failed: {failure.name}: {describe_slo(failure).split(': ', 1)[1]}")
        if failure is report.trust:
            lines.append(UNTRUSTWORTHY)
    if report.measurements is not None:
        lines += describe_failed_requests(report.measurements)
    return "\n".join(lines)


def describe_failed_requests(measurements: MeasurementsReport) -> list[str]:
    """List failed requests by error class with the first message of each, so a failure says why."""
    if not measurements.error_classes:
        return []
    failed = measurements.errors + measurements.rate_limited
    lines = [f"failed or rate-limited requests: {failed} of {measurements.requests}"]
    for error_class, count in sorted(measurements.error_classes.items(), key=lambda item: -item[1]):
        example = measurements.error_examples.get(error_class)
        lines.append(f"  {count} {error_class}" + (f" (first: {example})" if example else ""))
    return lines
