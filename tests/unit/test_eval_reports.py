"""Eval results in report text: which intervals the terminal, summary.md, HTML and JUnit show."""

from __future__ import annotations

from harness.reports.evals import describe_eval_scorer, scorer_result_text, shows_mean
from harness.reports.schema import EvalInterval, EvalScorerResult


def custom_scorer(min_mean: float | None) -> EvalScorerResult:
    return EvalScorerResult(
        name="short", type="custom", dataset="qa", version="1", graded=False, items=10, repeats=1,
        passed=8, scored=10, pass_rate=EvalInterval(estimate=0.8, low=0.49, high=0.94, confidence=0.95,
        samples=10), mean_score=EvalInterval(estimate=0.62, low=0.5, high=0.74, confidence=0.95, samples=10),
        min_pass_rate=None, min_mean=min_mean, weight=1.0, status="pass", gate="block", line=3, failures=[],
    )  # fmt: skip


def test_custom_scorer_with_min_mean_shows_mean() -> None:
    scorer = custom_scorer(min_mean=0.5)
    assert shows_mean(scorer)
    assert "mean score 62.0% [50.0%, 74.0%]" in describe_eval_scorer(scorer)


def test_custom_scorer_without_min_mean_hides_mean() -> None:
    scorer = custom_scorer(min_mean=None)
    assert not shows_mean(scorer)
    assert "mean score" not in describe_eval_scorer(scorer)


def test_scorer_without_threshold_reads_reported() -> None:
    assert scorer_result_text(custom_scorer(min_mean=None)) == "REPORTED"


def test_scorer_with_threshold_reads_status() -> None:
    assert scorer_result_text(custom_scorer(min_mean=0.5)) == "PASS"
