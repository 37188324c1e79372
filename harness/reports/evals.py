"""Eval results in words and table rows, for the terminal, summary.md, report.html and JUnit."""

from __future__ import annotations

from harness.reports.schema import (
    EvalInterval,
    EvalOverallResult,
    EvalReport,
    EvalScorerResult,
    ScenarioReport,
)

EVAL_HEADERS = (
    "scenario",
    "scorer",
    "pass rate [CI]",
    "mean score [CI]",
    "threshold",
    "items",
    "gate",
    "result",
)


def format_interval(value: EvalInterval | None) -> str:
    """Format, for example, ``92.6% [85.2%, 98.1%]``."""
    if value is None:
        return "-"
    return f"{value.estimate:.1%} [{value.low:.1%}, {value.high:.1%}]"


def threshold_text(scorer: EvalScorerResult) -> str:
    limits = []
    if scorer.min_pass_rate is not None:
        limits.append(f"pass rate >= {scorer.min_pass_rate:.1%}")
    if scorer.min_mean is not None:
        limits.append(f"mean >= {scorer.min_mean:.3g}")
    return ", ".join(limits) or "none (reported only)"


def result_text(status: str, gate: str) -> str:
    if status == "pass":
        return "PASS"
    word = {"fail": "FAIL", "inconclusive": "INCONCLUSIVE", "no_data": "NO DATA"}[status]
    return word if gate == "block" else f"{word} (warn)"


def scorer_result_text(scorer: EvalScorerResult) -> str:
    """Return the result column: REPORTED for a scorer without a threshold, which judges nothing."""
    if scorer.min_pass_rate is None and scorer.min_mean is None:
        return "REPORTED"
    return result_text(scorer.status, scorer.gate)


def shows_mean(scorer: EvalScorerResult) -> bool:
    """Return whether reports show the mean score: for graded scorers, and wherever min_mean is set."""
    return scorer.graded or scorer.min_mean is not None


def describe_eval_scorer(scorer: EvalScorerResult) -> str:
    """Return, for example, ``fail: pass rate 40.0% [23.3%, 56.7%] at 95% confidence, threshold ...``."""
    confidence = scorer.pass_rate.confidence if scorer.pass_rate is not None else None
    text = f"{scorer.status}: pass rate {format_interval(scorer.pass_rate)}"
    if shows_mean(scorer):
        text += f", mean score {format_interval(scorer.mean_score)}"
    if confidence is not None:
        text += f" at {confidence:.0%} confidence"
    return text + f", threshold {threshold_text(scorer)} ({scorer.items} items x {scorer.repeats} repeats)"


def describe_eval_overall(overall: EvalOverallResult) -> str:
    limit = "none (reported only)" if overall.min_score is None else f">= {overall.min_score:.3g}"
    return f"{overall.status}: weighted score {format_interval(overall.score)}, threshold {limit}"


def eval_rows(scenario: ScenarioReport) -> list[tuple[str, ...]]:
    report = scenario.eval
    if report is None:
        return []
    rows: list[tuple[str, ...]] = []
    for scorer in report.scorers:
        rows.append(
            (
                scenario.name,
                scorer.name,
                format_interval(scorer.pass_rate),
                format_interval(scorer.mean_score) if shows_mean(scorer) else "-",
                threshold_text(scorer),
                str(scorer.items),
                scorer.gate,
                scorer_result_text(scorer),
            )
        )
    overall = report.overall
    if overall.min_score is not None or len(report.scorers) > 1:
        threshold = (
            "none (reported only)" if overall.min_score is None else f"score >= {overall.min_score:.3g}"
        )
        items = str(overall.score.samples) if overall.score is not None else "0"
        result = "REPORTED" if overall.min_score is None else result_text(overall.status, overall.gate)
        rows.append(
            (scenario.name, "overall (weighted)", "-", format_interval(overall.score), threshold, items,
             overall.gate, result)
        )  # fmt: skip
    return rows


def eval_failures(report: EvalReport | None, blocking_only: bool) -> list[str]:
    """Describe every eval scorer (and the overall score) that did not pass."""
    if report is None:
        return []
    lines = []
    for scorer in report.scorers:
        if scorer.status == "pass" or (blocking_only and scorer.gate != "block"):
            continue
        lines.append(f"eval {scorer.name}: {describe_eval_scorer(scorer)}")
        lines += [f"  item {failure.item}: {failure.reason}" for failure in scorer.failures[:3]]
    overall = report.overall
    if overall.status != "pass" and not (blocking_only and overall.gate != "block"):
        lines.append(f"eval overall: {describe_eval_overall(overall)}")
    return lines


def eval_warnings(report: EvalReport | None) -> list[str]:
    """Describe every eval scorer (and the overall score) with ``gate: warn`` that did not pass."""
    if report is None:
        return []
    lines = [
        f"eval {scorer.name}: {describe_eval_scorer(scorer)}"
        for scorer in report.scorers
        if scorer.status != "pass" and scorer.gate == "warn"
    ]
    if report.overall.status != "pass" and report.overall.gate == "warn":
        lines.append(f"eval overall: {describe_eval_overall(report.overall)}")
    return lines


def eval_regressions(report: EvalReport | None) -> list[str]:
    """Describe every scorer whose interval lies below its baseline by more than the tolerance."""
    if report is None:
        return []
    lines = []
    for name, delta in [(s.name, s.baseline) for s in report.scorers] + [
        ("overall", report.overall.baseline)
    ]:
        if delta is None or delta.status != "regression":
            continue
        lines.append(
            f"eval {name} regressed: baseline {delta.baseline_value:.3f}, now in "
            f"[{delta.current_low:.3f}, {delta.current_high:.3f}], tolerance {delta.tolerance:g}"
        )
    return lines


def cache_note(report: EvalReport) -> str:
    where = f" (cache {report.cache_dir})" if report.cache_dir else " (cache off)"
    return f"{report.from_cache} of {report.outputs} eval outputs came from the eval cache{where}"
