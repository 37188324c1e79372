"""Phases of a run around each fault, and the measurements of each phase.

A request belongs to a phase by its intended start, on the records' clock: ``before`` a fault
is everything intended to start before it was applied, ``during`` is from its application up to
its removal, ``after`` is from its removal on. The windows come from when the fault was actually
applied and removed, not from its plan. Phases of different faults overlap: the ``before`` phase
of a second fault holds the first fault's whole story.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import get_args

from harness.faults.timeline import FaultEvent
from harness.metrics.records import RequestRecord
from harness.metrics.summary import Measurements, MeasurementsBuilder, RequestObjective
from harness.scenario.slo import Phase

FAULT_PHASES: tuple[Phase, ...] = tuple(phase for phase in get_args(Phase) if phase != "run")


@dataclass(frozen=True)
class PhaseWindow:
    fault: int
    phase: Phase
    start_s: float
    """Inclusive, on the records' clock; -inf for the phase before a fault."""
    end_s: float
    """Exclusive; inf for the phase after a fault."""

    def contains(self, intended_start: float) -> bool:
        return self.start_s <= intended_start < self.end_s


def fault_windows(position: int, event: FaultEvent) -> list[PhaseWindow]:
    """Return the before, during and after windows of a fault; none when it was never applied."""
    applied, removed = event.applied_at_s, event.removed_at_s
    if applied is None:
        return []
    removed = math.inf if removed is None else removed
    return [
        PhaseWindow(position, "before", -math.inf, applied),
        PhaseWindow(position, "during", applied, removed),
        PhaseWindow(position, "after", removed, math.inf),
    ]


@dataclass
class PhaseMeasurements:
    """Measurements of every phase of every fault that was applied."""

    windows: list[PhaseWindow]
    measurements: dict[tuple[int, Phase], Measurements] = field(default_factory=dict)

    def get(self, fault: int, phase: Phase) -> Measurements | None:
        return self.measurements.get((fault, phase))


def measure_phases(
    records: Iterable[RequestRecord], events: Sequence[FaultEvent], objectives: Sequence[RequestObjective]
) -> PhaseMeasurements:
    """Split records into the phases of each fault and measure each phase as a run of its own."""
    windows = [window for position, event in enumerate(events) for window in fault_windows(position, event)]
    builders = {(window.fault, window.phase): MeasurementsBuilder(objectives) for window in windows}
    for record in records:
        for window in windows:
            if window.contains(record.intended_start):
                builders[(window.fault, window.phase)].add(record)
    return PhaseMeasurements(windows, {key: builder.build() for key, builder in builders.items()})
