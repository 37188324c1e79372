"""Scenario faults: what to break, when, and for how long, while the load runs."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from harness.scenario.base import StrictModel
from harness.scenario.units import Duration

TARGET_PATTERN = re.compile(r"^(redis|gateway\.(\d+)|upstream\.([A-Za-z0-9][A-Za-z0-9_.-]{0,63}))$")
TARGET_HELP = "redis, gateway.<replica number from 0>, or upstream.<upstream name>"


class FaultSpec(StrictModel):
    """A process fault the stack backend performs: kill or restart (then start again), or pause."""

    model_config = ConfigDict(populate_by_name=False)

    at: Duration = Field(description="When the fault starts, from the start of the load.")
    duration: Duration = Field(alias="for", description="How long the fault lasts; then it is undone.")
    target: str = Field(description=f"The service to act on: {TARGET_HELP}.")
    action: Literal["kill", "pause", "restart"] = Field(
        description="kill stops the process with SIGKILL and starts it again when the fault ends (same "
        "port, empty state for Redis); restart sends SIGTERM, waits for the process to exit, and starts "
        "it again on the same port once it exited and the fault's time is up; pause freezes it with "
        "SIGSTOP and resumes it with SIGCONT."
    )

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

    def describe(self) -> dict[str, Any]:
        return {"target": self.target, "action": self.action, "at_s": self.at, "for_s": self.duration}
