"""Typed model of a scenario file (schema version 1).

Every model rejects unknown keys, so a misspelt field is an error instead of a setting that
silently keeps its default. Field descriptions end up in the JSON Schema that editors use.
Checks that span sections (a request for a model the stack does not serve, a TTFT objective
on a load without streaming) are in ``consistency_problems``, which the loader runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.scenario.base import GateMode, Name, StrictModel
from harness.scenario.load import LoadSpec, Message, RequestSpec
from harness.scenario.slo import SLOSpec, parse_percentile
from harness.scenario.stack import DEFAULT_MODEL_ALIAS, StackSpec, UpstreamSpec

SCENARIO_VERSION = 1

__all__ = [
    "DEFAULT_MODEL_ALIAS",
    "SCENARIO_VERSION",
    "GateMode",
    "LoadSpec",
    "Message",
    "RequestSpec",
    "SLOSpec",
    "Scenario",
    "StackSpec",
    "UpstreamSpec",
    "parse_percentile",
]

Location = tuple[str | int, ...]
STREAM_METRICS = ("ttft", "itl", "tpot")
"""Metrics measured only on streaming requests."""


class Scenario(StrictModel):
    """A scenario file: the stack to start, the load to send and the SLOs that gate the result."""

    version: Literal[1] = Field(description="Scenario schema version.")
    name: Name = Field(description="Unique name; reports and pytest test ids use it.")
    description: str = ""
    stack: StackSpec = Field(default_factory=StackSpec)
    load: LoadSpec
    slo: list[SLOSpec] = Field(description="Objectives, at least one: a scenario with none could never fail.")
    gate: GateMode = Field(
        "block", description="block fails the run when an SLO fails; warn only reports it."
    )

    def with_duration_scale(self, factor: float) -> Scenario:
        """Return a copy whose durations are multiplied by ``factor`` (thresholds are left alone)."""
        if factor == 1:
            return self
        return self.model_copy(update={"load": self.load.scaled(factor)})

    def consistency_problems(self) -> list[tuple[Location, str]]:
        """Return problems that span sections, each with the location of the field at fault."""
        problems: list[tuple[Location, str]] = []
        if not self.slo:
            problems.append((("slo",), "a scenario needs at least one SLO; with none it could never fail"))
        served = self.stack.model_routes()
        for position, request in enumerate(self.load.requests):
            if request.model is not None and request.model not in served:
                message = (
                    f"model {request.model!r} is not served by this stack; served models: {', '.join(served)}"
                )
                problems.append((("load", "requests", position, "model"), message))
        problems += self._slo_problems()
        return problems

    def _slo_problems(self) -> list[tuple[Location, str]]:
        problems: list[tuple[Location, str]] = []
        for position, slo in enumerate(self.slo):
            where: Location = ("slo", position, "metric")
            if slo.metric in STREAM_METRICS and not self.load.stream:
                message = (
                    f"a {slo.metric} objective needs streaming requests, but this load sets stream: false"
                )
                problems.append((where, message))
            if slo.metric == "capacity" and self.load.sweep is None:
                problems.append((where, "a capacity objective needs a sweep: add load.sweep"))
        if self.load.sweep is not None and all(slo.metric == "capacity" for slo in self.slo):
            message = "a sweep needs an objective other than capacity, or every rate would pass"
            problems.append((("slo",), message))
        return problems
