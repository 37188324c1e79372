"""The capacity search of a sweep: double the rate until a trial fails, then bisect.

Each trial is a constant-rate run judged by the scenario's objectives. The search keeps the
highest passing rate and the lowest failing one, and stops when the failing rate is within
``precision`` above the passing one, when the maximum rate passes, or after ``max_trials``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from harness.scenario.load import SweepSpec


@dataclass
class SweepSearch:
    """The state of one search; ``tried`` lists (rate, passed) in trial order."""

    spec: SweepSpec
    passing: float | None = None
    failing: float | None = None
    tried: list[tuple[float, bool]] = field(default_factory=list)

    def next_rate(self) -> float | None:
        """Return the rate of the next trial, or None when the search is over."""
        spec = self.spec
        if not self.tried:
            return spec.start_rate_per_s
        if len(self.tried) >= spec.max_trials:
            return None
        if self.failing is None:
            assert self.passing is not None
            return None if self.passing >= spec.max_rate_per_s else min(self.passing * 2, spec.max_rate_per_s)
        if self.passing is None:
            return self.failing / 2
        if self.failing <= self.passing * (1 + spec.precision):
            return None
        return (self.passing + self.failing) / 2

    def record(self, rate: float, passed: bool) -> None:
        self.tried.append((rate, passed))
        if passed:
            self.passing = max(rate, self.passing or 0.0)
        else:
            self.failing = min(rate, self.failing if self.failing is not None else rate)


def find_capacity(spec: SweepSpec, run_trial: Callable[[float], bool]) -> SweepSearch:
    """Run trials through ``run_trial(rate) -> passed`` until the search ends; return its state."""
    search = SweepSearch(spec)
    while (rate := search.next_rate()) is not None:
        search.record(rate, run_trial(rate))
    return search
