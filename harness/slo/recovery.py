"""Recovery time after a fault: how long until errors and latency are back to their level before it.

The band comes from the phase before the fault: its error rate plus ``error_rate_tolerance``
percentage points, and its p95 E2E latency times ``1 + latency_tolerance``. From the fault's
removal on, rolling windows of ``window`` seconds of intended starts are examined, one starting
at the removal and one at each later request. The first window with at least ``min_requests``
requests whose error rate and p95 E2E latency (nearest rank over the exact values) are both
inside the band marks recovery; its start minus the removal is the recovery time, 0 when the
first window is already healthy. A window must end before the last request of the run starts,
so a window cut short by the end of the load never counts as recovered.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from harness.faults.timeline import FaultEvent
from harness.metrics.histogram import nearest_rank
from harness.metrics.records import RequestRecord
from harness.scenario.gates import RecoverySpec

RECOVERY_PERCENTILE = 95.0


@dataclass(frozen=True)
class Outcome:
    """What recovery needs of one measured request."""

    start_s: float
    judged: bool
    """Not answered 429."""
    error: bool
    e2e_s: float | None
    """Successful requests only."""

    @classmethod
    def of(cls, record: RequestRecord) -> Outcome:
        e2e = record.e2e_latency if record.ok else None
        return cls(record.intended_start, record.ok or record.is_error, record.is_error, e2e)


@dataclass(frozen=True)
class Band:
    before_error_rate: float
    before_e2e_p95_s: float
    max_error_rate: float
    max_e2e_p95_s: float


@dataclass(frozen=True)
class Recovery:
    fault: int
    window_s: float
    band: Band | None
    recovery_time_s: float | None
    """None when the run did not show recovery; ``reason`` says why."""
    after_requests: int
    reason: str | None = None

    @property
    def recovered(self) -> bool:
        return self.recovery_time_s is not None

    @property
    def measurable(self) -> bool:
        """False when the run could not show recovery either way (no band, no full window)."""
        return self.band is not None and self.reason != SHORT_AFTER_PHASE


SHORT_AFTER_PHASE = (
    "the phase after the fault is shorter than one recovery window; lengthen the load after the "
    "fault or shorten recovery.window (--duration-scale does not scale it)"
)


def measure_recovery(
    position: int, event: FaultEvent, outcomes: Sequence[Outcome], spec: RecoverySpec
) -> Recovery:
    """Measure one fault's recovery from ``outcomes``, which are sorted by intended start."""
    applied, removed = event.applied_at_s, event.removed_at_s
    starts = [outcome.start_s for outcome in outcomes]
    after = outcomes[bisect.bisect_left(starts, removed) :] if removed is not None else []

    def result(band: Band | None, time_s: float | None, reason: str | None) -> Recovery:
        return Recovery(position, spec.window, band, time_s, len(after), reason)

    if applied is None or removed is None:
        return result(None, None, "the fault was never applied and removed")
    band = _band(outcomes[: bisect.bisect_left(starts, applied)], spec)
    if band is None:
        return result(None, None, f"the phase before the fault has fewer than {spec.min_requests} successes")
    if not after or after[-1].start_s - removed < spec.window:
        return result(band, None, SHORT_AFTER_PHASE)
    recovered_at = _first_healthy_window(after, removed, band, spec)
    if recovered_at is None:
        return result(band, None, "errors or latency stayed outside the band until the end of the load")
    return result(band, round(recovered_at - removed, 6), None)


def _band(before: Sequence[Outcome], spec: RecoverySpec) -> Band | None:
    latencies = sorted(outcome.e2e_s for outcome in before if outcome.e2e_s is not None)
    judged = sum(outcome.judged for outcome in before)
    if len(latencies) < spec.min_requests or not judged:
        return None
    error_rate = sum(outcome.error for outcome in before) / judged
    p95 = _p95(latencies)
    return Band(error_rate, p95, error_rate + spec.error_rate_tolerance, p95 * (1 + spec.latency_tolerance))


def _first_healthy_window(
    after: Sequence[Outcome], removed: float, band: Band, spec: RecoverySpec
) -> float | None:
    last_start = after[-1].start_s
    starts = [outcome.start_s for outcome in after]
    for window_start in [removed, *starts]:
        if window_start + spec.window > last_start:
            return None
        first = bisect.bisect_left(starts, window_start)
        end = bisect.bisect_left(starts, window_start + spec.window)
        if _healthy(after[first:end], band, spec):
            return window_start
    return None


def _healthy(window: Sequence[Outcome], band: Band, spec: RecoverySpec) -> bool:
    judged = sum(outcome.judged for outcome in window)
    latencies = sorted(outcome.e2e_s for outcome in window if outcome.e2e_s is not None)
    if len(window) < spec.min_requests or not judged or not latencies:
        return False
    error_rate = sum(outcome.error for outcome in window) / judged
    return error_rate <= band.max_error_rate + 1e-12 and _p95(latencies) <= band.max_e2e_p95_s


def _p95(sorted_values: Sequence[float]) -> float:
    return sorted_values[nearest_rank(RECOVERY_PERCENTILE, len(sorted_values)) - 1]
