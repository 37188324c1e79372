"""Scenario faults: what to break, when, and for how long, while the load runs.

A fault is either a process action the stack backend performs (kill, pause) or a network toxic
that the fault proxy applies to the traffic of a target. Toxics use Toxiproxy's types and
attribute names: times in milliseconds, the slicer's delay in microseconds, rates in KB/s.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from harness.scenario.base import Name, StrictModel
from harness.scenario.units import Duration

TARGET_PATTERN = re.compile(r"^(redis|gateway\.(\d+)|upstream\.([A-Za-z0-9][A-Za-z0-9_.-]{0,63}))$")
TARGET_HELP = "redis, gateway.<replica number from 0>, or upstream.<upstream name>"


class _ToxicBase(StrictModel):
    stream: Literal["upstream", "downstream"] = Field(
        "downstream",
        description="downstream: data from the target back to its client; upstream: data towards the target.",
    )
    toxicity: float = Field(
        1.0, ge=0, le=1, description="Probability, per connection, that the toxic applies."
    )

    def attributes(self) -> dict[str, int]:
        return self.model_dump(exclude={"type", "stream", "toxicity"})


class LatencyToxic(_ToxicBase):
    type: Literal["latency"]
    latency: int = Field(ge=0, description="Delay added to each chunk, in ms.")
    jitter: int = Field(0, ge=0, description="Random spread of the delay, plus or minus, in ms.")


class BandwidthToxic(_ToxicBase):
    type: Literal["bandwidth"]
    rate: int = Field(ge=1, description="KB/s (1 KB = 1000 bytes).")


class SlowCloseToxic(_ToxicBase):
    type: Literal["slow_close"]
    delay: int = Field(ge=0, description="How long the close is held back, in ms.")


class TimeoutToxic(_ToxicBase):
    type: Literal["timeout"]
    timeout: int = Field(
        ge=0, description="Close the connection after this many ms; 0 holds it, dropping data."
    )


class ResetPeerToxic(_ToxicBase):
    type: Literal["reset_peer"]
    timeout: int = Field(0, ge=0, description="Send a TCP reset after this many ms.")


class SlicerToxic(_ToxicBase):
    type: Literal["slicer"]
    average_size: int = Field(ge=1, description="Average slice size, in bytes.")
    size_variation: int = Field(0, ge=0, description="Spread of the slice size, in bytes.")
    delay: int = Field(0, ge=0, description="Pause between slices, in microseconds.")


class LimitDataToxic(_ToxicBase):
    type: Literal["limit_data"]
    bytes: int = Field(ge=1, description="Close the connection after this many bytes.")


class DownToxic(StrictModel):
    """The target's proxy is disabled: connections are refused, and open ones are closed."""

    type: Literal["down"]

    def attributes(self) -> dict[str, int]:
        return {}


ToxicSpec = Annotated[
    LatencyToxic
    | BandwidthToxic
    | SlowCloseToxic
    | TimeoutToxic
    | ResetPeerToxic
    | SlicerToxic
    | LimitDataToxic
    | DownToxic,
    Field(discriminator="type"),
]


class FaultSpec(StrictModel):
    """A fault during the load: a process action on a service, or a network toxic on its traffic."""

    model_config = ConfigDict(populate_by_name=False)

    at: Duration = Field(description="When the fault starts, from the start of the load.")
    duration: Duration = Field(alias="for", description="How long the fault lasts; then it is undone.")
    target: str = Field(description=f"The service to act on: {TARGET_HELP}.")
    name: Name | None = Field(
        None, description="A name that phase-scoped objectives and reports use; default is its position."
    )
    action: Literal["kill", "pause", "restart"] | None = Field(
        None,
        description="kill stops the process with SIGKILL and starts it again when the fault ends (same "
        "port, empty state for Redis); restart sends SIGTERM, waits for the process to exit, and starts "
        "it again on the same port once it exited and the fault's time is up; pause freezes it with "
        "SIGSTOP and resumes it with SIGCONT.",
    )
    toxic: ToxicSpec | None = Field(
        None, description="A network fault on the target's traffic, applied by the fault proxy."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> FaultSpec:
        if (self.action is None) == (self.toxic is None):
            raise ValueError(
                "a fault needs exactly one of action (kill, pause, restart) or toxic (a network fault)"
            )
        return self

    @field_validator("target")
    @classmethod
    def _known_target_form(cls, target: str) -> str:
        if not TARGET_PATTERN.match(target):
            raise ValueError(f"invalid fault target {target!r}; use {TARGET_HELP}")
        return target

    @field_validator("duration")
    @classmethod
    def _positive(cls, seconds: float) -> float:
        if seconds <= 0:
            raise ValueError("a fault must last longer than 0s")
        return seconds

    def scaled(self, factor: float) -> FaultSpec:
        return self.model_copy(update={"at": self.at * factor, "duration": self.duration * factor})

    @property
    def kind(self) -> str:
        """The action, or the toxic's type: what a report calls this fault."""
        if self.toxic is not None:
            return self.toxic.type
        assert self.action is not None
        return self.action

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "action": self.kind,
            "at_s": self.at,
            "for_s": self.duration,
        }
