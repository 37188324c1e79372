"""Sentences that explain a verdict: why an SLO failed and why requests failed."""

from __future__ import annotations

from harness.metrics.definitions import format_metric_value
from harness.reports.evals import eval_failures, eval_regressions
from harness.reports.schema import BaselineDelta, CheckResult, MeasurementsReport, ScenarioReport, SLOResult

UNTRUSTWORTHY = (
    "the load generator fell behind its schedule, so the run is untrustworthy: it sent a lighter load "
    "than the scenario asked for. Give the generator more CPU, lower the rate, or use engine: locust "
    "with more workers."
)


def describe_slo(slo: SLOResult) -> str:
    """Return, for example, ``fail: observed 300ms, limit max 250ms, 1200 samples, burn rate 2.5``."""
    observed = format_metric_value(slo.metric, slo.observed)
    if slo.observed is None:
        observed = f"none ({slo.note})" if slo.note else "no data (0 samples)"
    limit = format_metric_value(slo.metric, slo.limit)
    text = f"{slo.status}: observed {observed}, limit {slo.comparator} {limit}, {slo.samples} samples"
    if slo.burn_rate is not None:
        text += f", burn rate {slo.burn_rate:.3g}"
    return text


def format_change(delta: BaselineDelta) -> str:
    """Format a baseline change: +12.3% relative, or +0.8 points for a ratio."""
    if delta.change is None:
        return "-"
    if delta.change_kind == "relative":
        return f"{delta.change * 100:+.1f}%"
    return f"{delta.change * 100:+.2f} pts"


def describe_delta(slo: SLOResult) -> str:
    """Explain a baseline comparison: values, change, test, effect size and sample counts."""
    delta = slo.baseline
    if delta is None:
        return ""
    then = format_metric_value(slo.metric, delta.baseline_value)
    now = format_metric_value(slo.metric, delta.current_value)
    text = f"{then} -> {now} ({format_change(delta)}"
    if delta.tolerance is not None:
        tolerance = (
            f"{delta.tolerance * 100:g}%"
            if delta.change_kind == "relative"
            else f"{delta.tolerance * 100:g} pts"
        )
        text += f", tolerance {tolerance}"
    text += ")"
    if delta.p_value is not None:
        text += f", {delta.method} p={delta.p_value:.3g}"
    if delta.effect_size is not None:
        text += f", Cliff's delta {delta.effect_size:+.2f}"
    if delta.ci_low is not None and delta.ci_high is not None:
        scale, unit = (100, "%") if delta.change_kind == "relative" else (100, " pts")
        text += f", 95% CI [{delta.ci_low * scale:+.2f}{unit}, {delta.ci_high * scale:+.2f}{unit}]"
    text += f", {delta.baseline_samples} baseline vs {delta.current_samples} current samples"
    return text


def baseline_problems(report: ScenarioReport) -> list[str]:
    """Describe each regression against the baseline, or why there was no comparison."""
    baseline = report.baseline
    if baseline is None:
        return []
    if baseline.error is not None:
        return [f"baseline {baseline.source}: {baseline.error}"]
    problems = []
    for slo in report.slos:
        if slo.baseline is None or slo.baseline.status != "regression":
            continue
        place = f"{report.file}:{slo.line}: " if slo.line else ""
        problems.append(
            f"{place}regression against baseline {baseline.run_id}: {slo.name}: {describe_delta(slo)}"
        )
    problems += [f"{line} (baseline {baseline.run_id})" for line in eval_regressions(report.eval)]
    return problems


def blocking_baseline_problems(report: ScenarioReport) -> list[str]:
    baseline = report.baseline
    return baseline_problems(report) if baseline is not None and baseline.gate == "block" else []


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
    baseline = blocking_baseline_problems(report)
    evals = eval_failures(report.eval, blocking_only=True)
    names = [failure.name for failure in failures] + (["baseline comparison"] if baseline else [])
    names += [line.split(":", 1)[0] for line in evals if line.startswith("eval ")]
    lines = [f"{len(names)} blocking gate(s) failed: {', '.join(names)}"]
    for failure in failures:
        place = f"{report.file}:{failure.line}" if failure.line else report.file
        if isinstance(failure, CheckResult):
            lines.append(f"{place}: check failed: {failure.name}: {failure.detail}")
            continue
        lines.append(f"{place}: SLO failed: {failure.name}: {describe_slo(failure).split(': ', 1)[1]}")
        if failure is report.trust:
            lines.append(UNTRUSTWORTHY)
    lines += evals
    lines += baseline
    if report.measurements is not None:
        lines += describe_failed_requests(report.measurements)
    return "\n".join(lines)


def describe_failed_requests(measurements: MeasurementsReport) -> list[str]:
    """List failed requests by error class with the first message of each, so a failure shows its cause."""
    if not measurements.error_classes:
        return []
    failed = measurements.errors + measurements.rate_limited
    lines = [f"failed or rate-limited requests: {failed} of {measurements.requests}"]
    for error_class, count in sorted(measurements.error_classes.items(), key=lambda item: -item[1]):
        example = measurements.error_examples.get(error_class)
        lines.append(f"  {count} {error_class}" + (f" (first: {example})" if example else ""))
    return lines
