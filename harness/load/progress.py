"""A live progress line for a running load: elapsed of total, rate, in flight, errors, p95 so far."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.metrics.definitions import format_latency_ms
from harness.scenario.units import format_duration

PLAIN_INTERVAL_S = 5.0


@dataclass(frozen=True)
class ProgressSnapshot:
    elapsed_s: float
    duration_s: float
    started: int
    completed: int
    in_flight: int
    errors: int
    p95_s: float | None
    """E2E latency p95 of the successful requests so far."""
    final: bool

    def describe(self) -> str:
        rate = self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0
        p95 = format_latency_ms(self.p95_s * 1000) if self.p95_s is not None else "-"
        elapsed = min(self.elapsed_s, self.duration_s) if not self.final else self.elapsed_s
        return (
            f"{format_duration(round(elapsed, 1))} of {format_duration(self.duration_s)}"
            f" | {self.completed} done ({rate:.1f}/s) | {self.in_flight} in flight"
            f" | {self.errors} errors | e2e p95 {p95}"
        )


class ProgressPrinter:
    """Rewrites one line on a terminal; prints a plain line every few seconds elsewhere (CI logs)."""

    def __init__(self, write: Callable[[str], None], is_tty: bool, label: str) -> None:
        self._write = write
        self._is_tty = is_tty
        self._label = label
        self._last_plain_s = -PLAIN_INTERVAL_S
        self._width = 0

    def __call__(self, snapshot: ProgressSnapshot) -> None:
        line = f"  {self._label}: {snapshot.describe()}"
        if self._is_tty:
            padding = " " * max(0, self._width - len(line))
            self._width = len(line)
            self._write(f"\r{line}{padding}" + ("\n" if snapshot.final else ""))
        elif snapshot.final or snapshot.elapsed_s - self._last_plain_s >= PLAIN_INTERVAL_S:
            self._last_plain_s = snapshot.elapsed_s
            self._write(line + "\n")
