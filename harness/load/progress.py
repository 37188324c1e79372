"""A live progress line for a running load: elapsed of total, rate, in flight, errors, p95 so far.

On a terminal, rich styles one line that is rewritten in place; elsewhere (CI logs) a plain
line is printed every few seconds and at the end.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

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

    @property
    def rate_per_s(self) -> float:
        """Achieved completion rate since the start."""
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def parts(self) -> list[str]:
        p95 = format_latency_ms(self.p95_s * 1000) if self.p95_s is not None else "-"
        elapsed = min(self.elapsed_s, self.duration_s) if not self.final else self.elapsed_s
        return [
            f"{format_duration(round(elapsed, 1))} of {format_duration(self.duration_s)}",
            f"{self.completed} done ({self.rate_per_s:.1f}/s)",
            f"{self.in_flight} in flight",
            f"{self.errors} errors",
            f"e2e p95 {p95}",
        ]

    def describe(self) -> str:
        return " | ".join(self.parts())


class ProgressPrinter:
    """Rewrites one line on a terminal; prints a plain line every few seconds elsewhere (CI logs)."""

    def __init__(self, write: Callable[[str], None], is_tty: bool, label: str) -> None:
        self._write = write
        self._is_tty = is_tty
        self._label = label
        self._last_plain_s = -PLAIN_INTERVAL_S
        self._width = 0

    def __call__(self, snapshot: ProgressSnapshot) -> None:
        if self._is_tty:
            self._rewrite(snapshot)
        elif snapshot.final or snapshot.elapsed_s - self._last_plain_s >= PLAIN_INTERVAL_S:
            self._last_plain_s = snapshot.elapsed_s
            self._write(f"  {self._label}: {snapshot.describe()}\n")

    def _rewrite(self, snapshot: ProgressSnapshot) -> None:
        line = Text()
        line.append(f"  {self._label}: ", style="bold")
        for position, part in enumerate(snapshot.parts()):
            if position:
                line.append(" | ", style="dim")
            style = "red" if part.endswith(" errors") and snapshot.errors else ""
            line.append(part, style=style)
        plain_length = len(line.plain)
        padding = " " * max(0, self._width - plain_length)
        self._width = plain_length
        self._write(f"\r{_ansi(line)}{padding}" + ("\n" if snapshot.final else ""))


def _ansi(text: Text) -> str:
    """Render ``text`` to a string with ANSI styles, without a trailing newline."""
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=max(len(text.plain) + 1, 40), no_color=False)
    console.print(text, end="", soft_wrap=True)
    return buffer.getvalue()
