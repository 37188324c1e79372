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
    """Durations in seconds, summarised by percentiles with an exact count, min, max and mean."""

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

    def record(self, value_s: float) -> None:
        value_s = max(value_s, 0.0)
        micros = min(max(round(value_s * 1e6), _LOWEST_US), _HIGHEST_US)
        self._histogram.record_value(micros)
        self.count += 1
        self._sum_s += value_s
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
        seen = 0
        value_us = _HIGHEST_US
        for bucket in self._histogram.get_recorded_iterator():
            seen += bucket.count_added_in_this_iter_step
            if seen >= rank:
                value_us = self._histogram.get_highest_equivalent_value(bucket.value_iterated_to)
                break
        return min(max(value_us / 1e6, self._min_s), self._max_s)


def nearest_rank(percentile: float, count: int) -> int:
    """Return ceil(percentile * count / 100) for percentiles given to a thousandth, without float error.

    Floating point would make 95% of 20 samples 19.000000000000004 and round the rank up to 20.
    """
    thousandths = round(percentile * 1000)
    return max(1, -(-thousandths * count // 100_000))
