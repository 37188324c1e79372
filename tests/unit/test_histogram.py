import random

import pytest

from harness.metrics.histogram import LatencyHistogram, nearest_rank


def test_percentile_one_sample_is_that_sample() -> None:
    histogram = LatencyHistogram.of([0.123])
    for percentile in (1, 50, 99, 100):
        assert histogram.percentile(percentile) == pytest.approx(0.123)


def test_percentile_equal_values() -> None:
    histogram = LatencyHistogram.of([0.05] * 100)
    assert histogram.percentile(50) == pytest.approx(0.05)
    assert histogram.percentile(99.9) == pytest.approx(0.05)


def test_percentile_even_count_nearest_rank() -> None:
    histogram = LatencyHistogram.of([0.010, 0.020, 0.030, 0.040])
    # Nearest rank: p50 of four samples is the second one, within HdrHistogram's 0.1%.
    assert histogram.percentile(50) == pytest.approx(0.020, rel=1e-3)
    assert histogram.percentile(75) == pytest.approx(0.030, rel=1e-3)


def test_percentile_100_equals_exact_maximum() -> None:
    values = [random.Random(1).uniform(0.001, 5.0) for _ in range(1000)]
    histogram = LatencyHistogram.of(values)
    assert histogram.percentile(100) == max(values)
    assert histogram.max == max(values)


def test_percentiles_are_monotone_and_bounded() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(-3, 1) for _ in range(5000)]
    histogram = LatencyHistogram.of(values)
    percentiles = [histogram.percentile(p) for p in (0.1, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100)]
    assert percentiles == sorted(percentiles)
    assert all(min(values) <= value <= max(values) for value in percentiles)  # type: ignore[operator]


def test_percentile_relative_error_within_hdr_precision() -> None:
    values = [i / 1000 for i in range(1, 10_001)]
    histogram = LatencyHistogram.of(values)
    assert histogram.percentile(50) == pytest.approx(5.0, rel=2e-3)
    assert histogram.percentile(99) == pytest.approx(9.9, rel=2e-3)


def test_empty_histogram_has_no_values() -> None:
    histogram = LatencyHistogram()
    assert histogram.count == 0
    assert histogram.percentile(95) is None
    assert histogram.mean is None


@pytest.mark.parametrize("percentile", [0, -1, 100.1])
def test_percentile_out_of_range_rejected(percentile: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        LatencyHistogram.of([1.0]).percentile(percentile)


def test_mean_is_exact() -> None:
    assert LatencyHistogram.of([0.1, 0.2, 0.3]).mean == pytest.approx(0.2)


def test_percentile_nearest_rank_shows_single_outlier() -> None:
    histogram = LatencyHistogram.of([0.1] * 69 + [0.9])
    # ceil(0.99 * 70) = 70: the one slow request out of 70 is the p99.
    assert histogram.percentile(99) == pytest.approx(0.9)
    assert histogram.percentile(98) == pytest.approx(0.1, rel=1e-3)


@pytest.mark.parametrize(
    ("percentile", "count", "rank"), [(95, 20, 19), (50, 4, 2), (99.9, 1000, 999), (1, 1, 1)]
)
def test_nearest_rank_exact(percentile: float, count: int, rank: int) -> None:
    assert nearest_rank(percentile, count) == rank


def test_percentiles_match_sorted_samples() -> None:
    rng = random.Random(3)
    for count in (1, 2, 3, 10, 37, 100, 399):
        values = sorted(round(rng.uniform(0.001, 2.0), 3) for _ in range(count))
        histogram = LatencyHistogram.of(values)
        for percentile in (1, 25, 50, 90, 95, 99, 99.9):
            expected = values[nearest_rank(percentile, count) - 1]
            assert histogram.percentile(percentile) == pytest.approx(expected, rel=1e-3), (count, percentile)
