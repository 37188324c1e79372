"""Turn scored outputs into per-scorer results with intervals, gate statuses and an overall score.

Pass rates get Wilson intervals and mean scores percentile-bootstrap intervals (see statistics).

Each dataset's items are resampled together, so one resample gives every scorer of that dataset
its mean. Datasets are resampled independently, in order, from one generator seeded by the
eval's ``seed``. The weighted overall score of a resample is the weighted mean of the scorers'
mean scores in that resample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from harness.evals.scoring import Score, Scorer
from harness.evals.statistics import (
    GateStatus,
    Interval,
    bootstrap_means,
    interval,
    threshold_status,
    wilson_interval,
    worst_status,
)

MAX_FAILURES_SHOWN = 5


@dataclass(frozen=True)
class ScorerOutcome:
    """One scorer's results over a dataset's items (each item's scores are one per repeat)."""

    scorer: Scorer
    item_ids: list[str]
    scores: list[list[Score]]
    pass_rate: Interval | None
    mean_score: Interval | None
    resampled_means: NDArray[np.float64] | None

    @property
    def passed(self) -> int:
        return sum(score.passed for repeats in self.scores for score in repeats)

    @property
    def scored(self) -> int:
        return sum(len(repeats) for repeats in self.scores)

    def failures(self) -> list[tuple[str, int, str | None]]:
        found = [
            (item, repeat, score.reason)
            for item, repeats in zip(self.item_ids, self.scores, strict=True)
            for repeat, score in enumerate(repeats)
            if not score.passed
        ]
        return found[:MAX_FAILURES_SHOWN]

    def status(self, min_pass_rate: float | None, min_mean: float | None) -> GateStatus:
        """Apply the straddle rule to each threshold set; a scorer with none passes (it only reports)."""
        statuses: list[GateStatus] = []
        if min_pass_rate is not None:
            statuses.append(threshold_status(self.pass_rate, min_pass_rate))
        if min_mean is not None:
            statuses.append(threshold_status(self.mean_score, min_mean))
        return worst_status(statuses)


def summarize_dataset(
    item_ids: list[str],
    scores: Sequence[Sequence[Sequence[Score]]],
    scorers: Sequence[Scorer],
    confidence: float,
    resamples: int,
    generator: np.random.Generator,
) -> list[ScorerOutcome]:
    """Return every scorer's outcome; ``scores[item][scorer][repeat]`` is one dataset's scores."""
    if not item_ids:
        return [ScorerOutcome(scorer, [], [], None, None, None) for scorer in scorers]
    count = len(scorers)
    columns = np.zeros((len(item_ids), 2 * count))
    for row, per_scorer in enumerate(scores):
        for column, repeats in enumerate(per_scorer):
            columns[row, column] = np.mean([score.passed for score in repeats])
            columns[row, count + column] = np.mean([score.value for score in repeats])
    resampled = bootstrap_means(columns, resamples, generator)
    estimates = columns.mean(axis=0)
    outcomes = []
    for column, scorer in enumerate(scorers):
        outcomes.append(
            ScorerOutcome(
                scorer=scorer,
                item_ids=item_ids,
                scores=[list(per_scorer[column]) for per_scorer in scores],
                pass_rate=wilson_interval(float(columns[:, column].sum()), len(item_ids), confidence),
                mean_score=interval(
                    float(estimates[count + column]), resampled[:, count + column], confidence, len(item_ids)
                ),
                resampled_means=resampled[:, count + column],
            )
        )
    return outcomes


def overall_score(
    outcomes: Sequence[ScorerOutcome], weights: Sequence[float], confidence: float, samples: int
) -> Interval | None:
    """Return the weighted mean of the scorers' mean scores and its interval, or None without weight."""
    weighted = [
        (outcome, weight)
        for outcome, weight in zip(outcomes, weights, strict=True)
        if weight > 0 and outcome.mean_score is not None and outcome.resampled_means is not None
    ]
    total = sum(weight for _, weight in weighted)
    if not weighted or total == 0:
        return None
    estimate = sum(weight * outcome.mean_score.estimate for outcome, weight in weighted if outcome.mean_score)
    resampled = sum(
        weight * outcome.resampled_means
        for outcome, weight in weighted
        if outcome.resampled_means is not None
    )
    return interval(estimate / total, np.asarray(resampled) / total, confidence, samples)
