"""Retry backoff, retry budgets and circuit breakers: how the gateway treats an upstream that fails.

Each gateway replica keeps this state in memory, per upstream: replicas do not share breaker
states or budgets, so with N replicas an upstream gets up to N sets of probes.
"""

from __future__ import annotations

import enum
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from target_service.config import BreakerConfig, RetryConfig
from target_service.observability import log_event

Clock = Callable[[], float]
WINDOW_BUCKETS = 10
"""Buckets per rolling window: old outcomes leave the window a tenth of it at a time."""


class RetryPolicy:
    """Backoff with full jitter: retry n waits a uniform random time up to base * 2^(n-1), capped.

    Spreading retries over the whole interval, rather than around one value, keeps many clients
    that failed together from retrying together.
    """

    def __init__(self, config: RetryConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or random.Random()

    def backoff_s(self, retry_number: int, retry_after_s: float | None) -> float | None:
        """Return the wait before retry ``retry_number`` (1 for the first), or None not to retry.

        An upstream's Retry-After is a floor of the wait; one above ``max_backoff_s`` means no retry.
        """
        cap_s = min(self.config.max_backoff_s, self.config.base_backoff_s * 2 ** (retry_number - 1))
        delay_s = self.rng.uniform(0, cap_s)
        if retry_after_s is None:
            return delay_s
        if retry_after_s > self.config.max_backoff_s:
            return None
        return max(delay_s, retry_after_s)


class _Window:
    """Counts of two kinds of events in a rolling time window, in ``WINDOW_BUCKETS`` buckets."""

    def __init__(self, window_s: float, clock: Clock) -> None:
        self.bucket_s = window_s / WINDOW_BUCKETS
        self.clock = clock
        self.buckets: deque[list[float]] = deque()
        """Each bucket is [start time, first count, second count]."""

    def add(self, first: int = 0, second: int = 0) -> None:
        now = self._expire()
        if not self.buckets or now - self.buckets[-1][0] >= self.bucket_s:
            self.buckets.append([now, 0, 0])
        self.buckets[-1][1] += first
        self.buckets[-1][2] += second

    def totals(self) -> tuple[int, int]:
        self._expire()
        return int(sum(b[1] for b in self.buckets)), int(sum(b[2] for b in self.buckets))

    def clear(self) -> None:
        self.buckets.clear()

    def _expire(self) -> float:
        now = self.clock()
        horizon = now - self.bucket_s * WINDOW_BUCKETS
        while self.buckets and self.buckets[0][0] <= horizon:
            self.buckets.popleft()
        return now


class RetryBudget:
    """Caps the retries to one upstream at ``budget_ratio`` of its first attempts in a rolling window.

    ``budget_min_retries`` retries are allowed in any window, so an upstream with little traffic
    can still be retried.
    """

    def __init__(self, config: RetryConfig, clock: Clock = time.monotonic) -> None:
        self.config = config
        self.window = _Window(config.budget_window_s, clock)

    def record_attempt(self) -> None:
        """Count a first attempt, which earns ``budget_ratio`` of a retry."""
        self.window.add(first=1)

    def try_spend(self) -> bool:
        """Return True and count a retry when the budget has room for one, else False."""
        attempts, retries = self.window.totals()
        if retries >= max(self.config.budget_min_retries, self.config.budget_ratio * attempts):
            return False
        self.window.add(second=1)
        return True


class BreakerState(enum.IntEnum):
    """States of a circuit breaker; the values are those of the breaker-state gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower()


BreakerListener = Callable[[str, BreakerState], None]
"""Called with the upstream name and the new state after every transition."""


@dataclass
class BreakerPermit:
    """Leave to call an upstream; report the call's outcome through it, and only the first report counts."""

    breaker: CircuitBreaker | None
    probe: bool
    generation: int = 0
    """The breaker's generation when the permit was given; outcomes of older ones are ignored."""
    done: bool = False

    def success(self) -> None:
        self._settle("success")

    def failure(self) -> None:
        self._settle("failure")

    def release(self) -> None:
        """End the call with no outcome: the client left, the upstream returned 429, or the drain ended it."""
        self._settle("none")

    def _settle(self, outcome: str) -> None:
        if self.done or self.breaker is None:
            return
        self.done = True
        self.breaker.settle(self.probe, self.generation, outcome)


class CircuitBreaker:
    """Breaker of one upstream: closed, open after too many failures, half-open to probe.

    Closed, it counts call outcomes in a rolling window and opens when at least ``min_calls``
    calls ended and ``failure_ratio`` of them failed. Open, it admits nothing for
    ``cooldown_s``. Half-open, it admits ``half_open_probes`` calls: it closes when that many
    succeeded and opens again on any failure, and every other call is turned away meanwhile.
    """

    def __init__(
        self, upstream: str, config: BreakerConfig, listener: BreakerListener, clock: Clock = time.monotonic
    ) -> None:
        self.upstream = upstream
        self.config = config
        self.listener = listener
        self.clock = clock
        self.outcomes = _Window(config.window_s, clock)
        """Failures and calls of the closed state."""
        self._state = BreakerState.CLOSED
        self.generation = 0
        """Incremented on every transition, so outcomes of calls from an earlier state are ignored."""
        self.opened_at = 0.0
        self.probes_in_flight = 0
        self.probe_successes = 0

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self.clock() - self.opened_at >= self.config.cooldown_s:
            self._move(BreakerState.HALF_OPEN, "the cooldown ended")
        return self._state

    def acquire(self) -> BreakerPermit | None:
        """Return a permit to call the upstream, or None when the breaker turns the call away."""
        if not self.config.enabled:
            return BreakerPermit(None, probe=False)
        state = self.state
        if state is BreakerState.CLOSED:
            return BreakerPermit(self, probe=False, generation=self.generation)
        admitted = self.probes_in_flight + self.probe_successes
        if state is BreakerState.HALF_OPEN and admitted < self.config.half_open_probes:
            self.probes_in_flight += 1
            return BreakerPermit(self, probe=True, generation=self.generation)
        return None

    def retry_after_s(self) -> float:
        """Return the time until the breaker next admits a probe (0 when half-open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(self.config.cooldown_s - (self.clock() - self.opened_at), 0.0)

    def settle(self, probe: bool, generation: int, outcome: str) -> None:
        """Count the outcome (success, failure or none) of a call admitted in ``generation``."""
        if generation != self.generation:
            return
        if probe:
            self._settle_probe(outcome)
        elif outcome != "none":
            self.outcomes.add(first=int(outcome == "failure"), second=1)
            self._open_if_failing()

    def _settle_probe(self, outcome: str) -> None:
        self.probes_in_flight -= 1
        if outcome == "failure":
            self._open("a probe failed")
        elif outcome == "success":
            self.probe_successes += 1
            if self.probe_successes >= self.config.half_open_probes:
                self._move(BreakerState.CLOSED, f"{self.probe_successes} probe(s) succeeded")

    def _open_if_failing(self) -> None:
        failures, calls = self.outcomes.totals()
        if calls >= self.config.min_calls and failures >= self.config.failure_ratio * calls:
            self._open(f"{failures} of {calls} calls failed in {self.config.window_s:g} s")

    def _open(self, reason: str) -> None:
        self.opened_at = self.clock()
        self._move(BreakerState.OPEN, reason)

    def _move(self, state: BreakerState, reason: str) -> None:
        previous, self._state = self._state, state
        self.generation += 1
        self.outcomes.clear()
        self.probe_successes = 0
        self.probes_in_flight = 0
        level = logging.WARNING if state is BreakerState.OPEN else logging.INFO
        log_event(
            "breaker_transition",
            level,
            upstream=self.upstream,
            from_state=previous.label,
            to_state=state.label,
            reason=reason,
        )
        self.listener(self.upstream, state)
