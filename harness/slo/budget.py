"""Error budgets and burn rates: how much of an objective's allowance of bad occurrences a run used.

An objective with a target share of good occurrences (99% of requests succeed, 95% of requests
have TTFT within 300 ms) allows ``(1 - objective) * total`` bad ones: that is its error budget.
The burn rate is the observed bad ratio over ``1 - objective``: 1 spends the budget exactly, 2
spends it twice over, 0.5 leaves half of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.metrics.definitions import METRICS, MetricKind
from harness.metrics.summary import Measurements

Comparator = Literal["max", "min"]


@dataclass(frozen=True)
class ErrorBudget:
    objective: float
    """The share of occurrences that must be good, such as 0.99."""
    bad: int
    total: int

    @property
    def bad_ratio(self) -> float | None:
        return self.bad / self.total if self.total else None

    @property
    def allowed_bad(self) -> float:
        """Bad occurrences the objective allows among ``total``."""
        return (1 - self.objective) * self.total

    @property
    def burn_rate(self) -> float | None:
        """Observed bad ratio over (1 - objective); None without data or when the objective is 100%."""
        ratio = self.bad_ratio
        if ratio is None or self.objective >= 1:
            return None
        return round(ratio / (1 - self.objective), 9)

    @property
    def remaining(self) -> float | None:
        """The share of the budget left: 1 - burn rate; negative when overspent."""
        burn = self.burn_rate
        return None if burn is None else round(1 - burn, 9)

    @property
    def exhausted(self) -> bool:
        """True when the run had more bad occurrences than the objective allows."""
        return self.bad > self.allowed_bad + 1e-9


def objective_share(
    metric: str, comparator: Comparator, limit: float, percentile: float | None
) -> float | None:
    """Return the share of good occurrences an objective asks for, or None when it is not a share.

    Ratios: ``error_rate <= 1%`` asks for 99% good requests, ``availability >= 99.5%`` for 99.5%.
    Per-request metrics at a percentile: ``ttft p95 <= 300ms`` asks that 95% of requests meet
    300 ms; ``output_tokens_per_s p5 >= 20/s`` asks that 95% do.
    """
    kind = METRICS[metric].kind
    if kind is MetricKind.RATIO:
        return round(1 - limit, 12) if comparator == "max" else limit
    if kind in (MetricKind.LATENCY, MetricKind.REQUEST_RATE) and percentile is not None:
        if metric == "cache_latency_saved":
            return None
        share = percentile / 100 if comparator == "max" else 1 - percentile / 100
        return round(share, 12)
    return None


def error_budget(
    metric: str, comparator: Comparator, limit: float, percentile: float | None, measurements: Measurements
) -> ErrorBudget | None:
    """Count the objective's bad and total occurrences in ``measurements``; None when it has no share."""
    objective = objective_share(metric, comparator, limit, percentile)
    if objective is None:
        return None
    counts = _bad_and_total(metric, comparator, limit, measurements)
    if counts is None:
        return None
    return ErrorBudget(objective, *counts)


def _ratio_counts(metric: str, measurements: Measurements) -> tuple[int, int] | None:
    """Return the occurrences a ratio metric counts and their total; None for other metrics."""
    if metric == "error_rate":
        return measurements.errors, measurements.judged
    if metric == "availability":
        return measurements.judged - measurements.errors, measurements.judged
    if metric == "rate_limited":
        return measurements.rate_limited, measurements.requests
    if metric == "cache_hit_ratio":
        cache = measurements.cache
        return cache.hits, cache.looked_up
    return None


def _bad_and_total(
    metric: str, comparator: Comparator, limit: float, measurements: Measurements
) -> tuple[int, int] | None:
    counted = _ratio_counts(metric, measurements)
    if counted is not None:
        # The ratio counts some occurrences among a total. Under a max they are the bad ones
        # (errors, 429s). Under a min they are the good ones (successes, cache hits, or 429s that
        # a rate-limit test expects), so the rest of the total is bad.
        occurrences, total = counted
        return (occurrences, total) if comparator == "max" else (total - occurrences, total)
    histogram = getattr(measurements, metric, None)
    if histogram is None:
        return None
    return histogram.count_beyond(limit, comparator), histogram.count
