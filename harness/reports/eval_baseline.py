"""Compare eval results with a baseline run's: a regression needs the whole interval below it.

A scorer regressed when the upper bound of its current interval lies below the baseline's
estimate by more than the eval's ``baseline_tolerance``. It improved when the lower bound lies
above the baseline by more than that. The value compared is the mean score for graded scorers
and the pass rate for the others, as is the overall weighted score.
"""

from __future__ import annotations

from typing import Literal

from harness.reports.schema import EvalBaselineDelta, EvalInterval, EvalReport, EvalScorerResult


def compared_value(scorer: EvalScorerResult) -> EvalInterval | None:
    return scorer.mean_score if scorer.graded else scorer.pass_rate


def eval_delta(
    current: EvalInterval | None, baseline: EvalInterval | None, tolerance: float
) -> EvalBaselineDelta:
    if current is None or baseline is None:
        note = "no current result" if current is None else "the baseline has no result"
        return EvalBaselineDelta(
            baseline_value=baseline.estimate if baseline else None,
            current_low=current.low if current else None,
            current_high=current.high if current else None,
            tolerance=tolerance,
            status="not_tested",
            note=note,
        )
    status: Literal["regression", "improvement", "no_change"] = "no_change"
    if current.high < baseline.estimate - tolerance:
        status = "regression"
    elif current.low > baseline.estimate + tolerance:
        status = "improvement"
    return EvalBaselineDelta(
        baseline_value=baseline.estimate,
        current_low=current.low,
        current_high=current.high,
        tolerance=tolerance,
        status=status,
    )


def compare_evals(current: EvalReport | None, baseline: EvalReport | None) -> EvalReport | None:
    """Return ``current`` with a baseline delta on every scorer and on the overall score."""
    if current is None:
        return None
    tolerance = current.baseline_tolerance
    previous = {scorer.name: scorer for scorer in baseline.scorers} if baseline is not None else {}
    scorers = []
    for scorer in current.scorers:
        before = previous.get(scorer.name)
        if before is None:
            delta = eval_delta(compared_value(scorer), None, tolerance)
            delta = delta.model_copy(update={"note": "the baseline run has no scorer of this name"})
        else:
            delta = eval_delta(compared_value(scorer), compared_value(before), tolerance)
        scorers.append(scorer.model_copy(update={"baseline": delta}))
    overall_before = baseline.overall.score if baseline is not None else None
    overall = current.overall.model_copy(
        update={"baseline": eval_delta(current.overall.score, overall_before, tolerance)}
    )
    return current.model_copy(update={"scorers": scorers, "overall": overall})


def regressed_scorers(report: EvalReport) -> list[str]:
    names = [s.name for s in report.scorers if s.baseline is not None and s.baseline.status == "regression"]
    if report.overall.baseline is not None and report.overall.baseline.status == "regression":
        names.append("overall")
    return names
