"""The one percentile method of slogate: nearest rank over an HdrHistogram, clamped to exact extremes.

Values are recorded in microseconds at 3 significant digits. The p-th percentile of n samples
is the sample of rank ceil(p * n / 100) in ascending order (nearest rank), so at least p% of
the samples are at or below it and a single slow request out of 70 shows at p99. The value
reported is the highest value equivalent to that sample in the histogram (relative error at
most 0.1%), clamped into the exact observed [min, max]: the result never decreases as p rises,
and p100 is the exact maximum.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

_LOWEST_US = 1
_HIGHEST_US = 24 * 3600 * 1_000_000
_SIGNIFICANT_DIGITS = 3


class LatencyHistogram:
    """Durations in seconds, summarised by percentiles with an exact count, min, max and mean.

    Per-request rates (output tokens per second) use it too: a value is stored in millionths,
    so anything from 0.000001 to 86,400 keeps 3 significant digits.
    """

    def __init__(self) -> None:
        self._histogram = HdrHistogram(_LOWEST_US, _HIGHEST_US, _SIGNIFICANT_DIGITS)
        self.count = 0
        self._sum_s = 0.0
        self._min_s = math.inf
        self._max_s = -math.inf

    @classmethod
    def of(cls, values_s: Iterable[float]) -> LatencyHistogram:
        histogram = cls()
        for value in values_s:
            histogram.record(value)
        return histogram

    def record(self, value_s: float, count: int = 1) -> None:
        """Record ``value_s`` ``count`` times."""
        value_s = max(value_s, 0.0)
        self._histogram.record_value(_micros(value_s), count)
        self.count += count
        self._sum_s += value_s * count
        self._min_s = min(self._min_s, value_s)
        self._max_s = max(self._max_s, value_s)

    @property
    def min(self) -> float | None:
        return self._min_s if self.count else None

    @property
    def max(self) -> float | None:
        return self._max_s if self.count else None

    @property
    def mean(self) -> float | None:
        return self._sum_s / self.count if self.count else None

    def percentile(self, percentile: float) -> float | None:
        """Return the value at ``percentile`` (0 < p <= 100) in seconds, or None without samples."""
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        if not self.count:
            return None
        if percentile == 100:
            return self._max_s
        rank = nearest_rank(percentile, self.count)
        histogram = self._histogram
        lowest = histogram.get_counts_array_index(_micros(self._min_s))
        highest = histogram.get_counts_array_index(_micros(self._max_s))
        # Scan only the slots between the exact extremes: a slice of the counts is a fast list.
        seen = 0
        index = highest
        for offset, count in enumerate(histogram.counts[lowest : highest + 1]):
            seen += count
            if seen >= rank:
                index = lowest + offset
                break
        value_us = float(histogram.get_highest_equivalent_value(histogram.get_value_from_index(index)))
        return min(max(value_us / 1e6, self._min_s), self._max_s)

    def count_beyond(self, limit_s: float, comparator: str) -> int:
        """Count samples above ``limit_s`` (comparator max) or below it (min), valued as percentile() does.

        Each sample is taken at the value percentile() would report for it (its bucket's highest
        equivalent value, clamped into [min, max]), so the share of samples within the limit
        reaches p% exactly when the p-th percentile meets the limit.
        """
        if not self.count:
            return 0
        histogram = self._histogram
        lowest = histogram.get_counts_array_index(_micros(self._min_s))
        highest = histogram.get_counts_array_index(_micros(self._max_s))
        beyond = 0
        for offset, count in enumerate(histogram.counts[lowest : highest + 1]):
            if not count:
                continue
            value = self._reported_value(lowest + offset)
            if (value > limit_s) if comparator == "max" else (value < limit_s):
                beyond += count
        return beyond

    def _reported_value(self, index: int) -> float:
        histogram = self._histogram
        value_us = float(histogram.get_highest_equivalent_value(histogram.get_value_from_index(index)))
        return min(max(value_us / 1e6, self._min_s), self._max_s)


def _micros(value_s: float) -> int:
    return int(min(max(round(value_s * 1e6), _LOWEST_US), _HIGHEST_US))


def nearest_rank(percentile: float, count: int) -> int:
    """Return ceil(percentile * count / 100) for percentiles given to a thousandth, without float error.

    Floating point would make 95% of 20 samples 19.000000000000004 and round the rank up to 20.
    """
    thousandths = round(percentile * 1000)
    return max(1, -(-thousandths * count // 100_000))
