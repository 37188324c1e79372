"""The statistical tests behind baseline comparison: Mann-Whitney U with Cliff's delta, and bootstrap.

Latency samples are compared with a one-sided Mann-Whitney U test (scipy's asymptotic method
with tie correction), which needs no assumption about the shape of either distribution; its
effect size is Cliff's delta, P(current > baseline) - P(current < baseline), computed from U.
Means (of error indicators, per-second counts, per-request costs) are compared with a
percentile bootstrap of the difference, seeded so a report is reproducible.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
_CHUNK_VALUES = 2_000_000
"""Resampled values drawn at once, so memory stays near 16 MB whatever the sample size."""


@dataclass(frozen=True)
class RankTest:
    p_greater: float
    """One-sided p-value that current samples tend to be greater than baseline samples."""
    p_less: float
    cliffs_delta: float
    """P(current > baseline) - P(current < baseline), in [-1, 1]."""


def rank_test(current: Sequence[float], baseline: Sequence[float]) -> RankTest:
    """Run Mann-Whitney U both ways on two non-empty samples and compute Cliff's delta."""
    greater = stats.mannwhitneyu(current, baseline, alternative="greater", method="asymptotic")
    less = stats.mannwhitneyu(current, baseline, alternative="less", method="asymptotic")
    # U counts the pairs where current is greater, plus half of the ties.
    delta = 2 * float(greater.statistic) / (len(current) * len(baseline)) - 1
    return RankTest(float(greater.pvalue), float(less.pvalue), delta)


@dataclass(frozen=True)
class BootstrapInterval:
    difference: float
    """Mean of current minus mean of baseline."""
    low: float
    high: float
    p_greater: float
    """Share of resamples whose difference is not above 0: a one-sided p-value that current is higher."""
    p_less: float


def bootstrap_mean_difference(
    current: Sequence[float], baseline: Sequence[float], seed_text: str, resamples: int = BOOTSTRAP_RESAMPLES
) -> BootstrapInterval:
    """Bootstrap the difference of means of two non-empty samples; return its interval and p-values."""
    rng = np.random.default_rng(zlib.crc32(seed_text.encode()))
    current_array, baseline_array = np.asarray(current, float), np.asarray(baseline, float)
    differences = _resampled_means(current_array, resamples, rng) - _resampled_means(
        baseline_array, resamples, rng
    )
    low, high = np.quantile(differences, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    # Add-one, so a p-value is never reported as exactly 0 from a finite number of resamples.
    p_greater = (np.count_nonzero(differences <= 0) + 1) / (resamples + 1)
    p_less = (np.count_nonzero(differences >= 0) + 1) / (resamples + 1)
    difference = float(current_array.mean() - baseline_array.mean())
    return BootstrapInterval(difference, float(low), float(high), float(p_greater), float(p_less))


def _resampled_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``resamples`` resamples with replacement, drawn in chunks to bound memory."""
    means = np.empty(resamples)
    chunk = max(1, _CHUNK_VALUES // len(values))
    for start in range(0, resamples, chunk):
        count = min(chunk, resamples - start)
        indices = rng.integers(0, len(values), size=(count, len(values)))
        means[start : start + count] = values[indices].mean(axis=1)
    return means
