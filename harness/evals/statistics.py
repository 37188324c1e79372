"""Intervals of eval scores, and the rule that turns an interval into a gate status.

Pass rates get a Wilson score interval on the number of items n, with k the sum of the items'
pass fractions. With repeats, an item's pass fraction is the share of its repeats that passed,
so k need not be a whole number. The binomial model is then an approximation, because repeats of
one item are not independent draws. Unlike a bootstrap, the Wilson interval does not collapse to
a point at 0% or 100%: 3 passes out of 3 give [43.9%, 100%] at 95% confidence.

Mean scores get a percentile bootstrap. The unit of resampling is the dataset item: with repeats,
an item's score is the mean over its repeats, and the bootstrap resamples items with replacement.
The interval at confidence c is the (1 - c) / 2 and (1 + c) / 2 percentiles of the resampled
means. A seeded generator makes every interval reproducible.

Straddle rule: a threshold passes only when the interval's lower bound reaches it, and fails
when the upper bound is below it. A point estimate above the threshold whose interval reaches
below it is ``inconclusive``, which fails a blocking gate and warns under ``gate: warn``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
from numpy.typing import NDArray

GateStatus = Literal["pass", "fail", "inconclusive", "no_data"]
_STATUS_ORDER: tuple[GateStatus, ...] = ("pass", "no_data", "inconclusive", "fail")


@dataclass(frozen=True)
class Interval:
    """A point estimate and its interval at ``confidence`` (Wilson or percentile bootstrap)."""

    estimate: float
    low: float
    high: float
    confidence: float
    samples: int


def bootstrap_means(
    columns: NDArray[np.float64], resamples: int, generator: np.random.Generator
) -> NDArray[np.float64]:
    """Return the column means of ``resamples`` resamples of the rows, as a (resamples, columns) array."""
    rows = columns.shape[0]
    picks = generator.integers(0, rows, size=(resamples, rows))
    means: NDArray[np.float64] = columns[picks].mean(axis=1)
    return means


def interval(estimate: float, resampled: NDArray[np.float64], confidence: float, samples: int) -> Interval:
    """Return the percentile interval of ``resampled`` around ``estimate``."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return Interval(round(estimate, 6), round(float(low), 6), round(float(high), 6), confidence, samples)


def wilson_interval(successes: float, trials: int, confidence: float) -> Interval:
    """Return the share ``successes / trials`` and its Wilson score interval at ``confidence``."""
    if trials < 1:
        raise ValueError("a Wilson interval needs at least one trial")
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    share = successes / trials
    spread = z * z / trials
    center = (share + spread / 2) / (1 + spread)
    half_width = z / (1 + spread) * math.sqrt(share * (1 - share) / trials + spread / (4 * trials))
    low, high = max(0.0, center - half_width), min(1.0, center + half_width)
    return Interval(round(share, 6), round(low, 6), round(high, 6), confidence, trials)


def bootstrap_interval(values: Sequence[float], confidence: float, resamples: int, seed: int) -> Interval:
    """Return the mean of ``values`` and its percentile-bootstrap interval."""
    if not values:
        raise ValueError("a bootstrap interval needs at least one value")
    column = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    resampled = bootstrap_means(column, resamples, np.random.default_rng(seed))[:, 0]
    return interval(float(column.mean()), resampled, confidence, len(values))


def threshold_status(value: Interval | None, minimum: float) -> GateStatus:
    """Apply the straddle rule to a lower limit: pass, fail or inconclusive."""
    if value is None:
        return "no_data"
    if value.low >= minimum:
        return "pass"
    if value.high < minimum:
        return "fail"
    return "inconclusive"


def worst_status(statuses: Sequence[GateStatus]) -> GateStatus:
    return max(statuses, key=_STATUS_ORDER.index, default="pass")
