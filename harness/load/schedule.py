"""Open-model schedules: when each request is due, for constant or Poisson arrivals over stages.

The arrival rate is piecewise linear in time (a constant rate is one flat piece). Its
integral, the expected number of requests by time t, is piecewise quadratic. Request i is due
when that integral reaches i (constant arrivals) or the sum of i unit exponential draws
(Poisson arrivals, counted from 1). So a constant 20/s gives i / 20, a ramp spaces requests as
the rate rises, and a Poisson schedule has the same mean rate with random gaps.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from harness.scenario.load import LoadSpec


@dataclass(frozen=True)
class Segment:
    """A piece of the schedule in which the rate moves linearly from ``start_rate`` to ``end_rate``."""

    start_s: float
    end_s: float
    start_rate: float
    end_rate: float

    @property
    def expected(self) -> float:
        """Expected requests in the segment: the integral of the rate."""
        return (self.start_rate + self.end_rate) / 2 * (self.end_s - self.start_s)

    def time_of(self, count: float) -> float:
        """Return when the integral of the rate from ``start_s`` reaches ``count``, at most ``end_s``."""
        length = self.end_s - self.start_s
        slope = (self.end_rate - self.start_rate) / length if length > 0 else 0.0
        # Solve start_rate * x + slope / 2 * x^2 = count in the form that avoids cancellation.
        root = math.sqrt(max(self.start_rate**2 + 2 * slope * count, 0.0))
        denominator = self.start_rate + root
        offset = 2 * count / denominator if denominator > 0 else 0.0
        return min(self.start_s + offset, self.end_s)


def segments(spec: LoadSpec, rate_per_s: float | None = None) -> list[Segment]:
    """Return the schedule's rate pieces; ``rate_per_s`` overrides the spec with a constant rate."""
    if rate_per_s is not None or spec.stages is None:
        rate = rate_per_s if rate_per_s is not None else spec.rate_per_s
        assert rate is not None, "an open schedule needs a rate"
        return [Segment(0.0, spec.schedule_s, rate, rate)]
    pieces = []
    start, previous_rate = 0.0, spec.start_rate_per_s
    for stage in spec.stages:
        end = start + stage.duration
        if stage.duration > 0:
            first = stage.rate_per_s if stage.ramp == "step" else previous_rate
            pieces.append(Segment(start, end, first, stage.rate_per_s))
        start, previous_rate = end, stage.rate_per_s
    return pieces


def arrival_times(spec: LoadSpec, rng: random.Random, rate_per_s: float | None = None) -> Iterator[float]:
    """Yield the intended start of each request in seconds from the run's start, in order.

    Stops at the end of the schedule or after ``max_requests``, whichever comes first.
    """
    poisson = spec.arrival == "poisson"
    target = rng.expovariate(1.0) if poisson else 0.0
    passed = 0.0
    produced = 0
    for segment in segments(spec, rate_per_s):
        expected = segment.expected
        while target < passed + expected:
            if produced >= spec.max_requests:
                return
            yield segment.time_of(target - passed)
            produced += 1
            target += rng.expovariate(1.0) if poisson else 1.0
        passed += expected
