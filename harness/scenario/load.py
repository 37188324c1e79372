"""Scenario settings of the load: the workload model, its schedule, its limits and the request kinds."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from harness.scenario.base import StrictModel
from harness.scenario.units import Duration, Percent, format_duration

MAX_DURATION_S = 7 * 24 * 3600.0
MAX_TIMEOUT_S = 3600.0


class Message(StrictModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class RequestSpec(StrictModel):
    """One kind of chat completion request; the load engine picks kinds by weight."""

    weight: float = Field(1.0, gt=0, le=1_000_000, description="Relative share of requests of this kind.")
    model: str | None = Field(None, description="Model alias; default is the stack's first model.")
    tenant: str | None = Field(
        None, description="Tenant whose API key the request carries; default is the stack's first tenant."
    )
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = Field(None, ge=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Further request fields sent as they are, for server extensions."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra HTTP headers for this kind.")

    def body(self, default_model: str, stream: bool) -> dict[str, Any]:
        """Build the JSON body of a chat completion request."""
        fields = self.model_dump(
            mode="json", exclude_none=True, exclude={"weight", "extra_body", "headers", "model", "tenant"}
        )
        body: dict[str, Any] = {"model": self.model or default_model, **fields, **self.extra_body}
        body["stream"] = stream
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body


MAX_RATE_PER_S = 1_000_000.0
MAX_STAGES = 1000
MAX_WORKERS = 64

_LOAD_JSON_SCHEMA_RULES: dict[str, Any] = {
    "allOf": [
        {
            "if": {"properties": {"model": {"const": "open"}}, "required": ["model"]},
            "then": {
                "not": {"required": ["users"]},
                "oneOf": [{"required": ["rate_per_s"]}, {"required": ["stages"]}, {"required": ["sweep"]}],
            },
            "else": {
                "required": ["users", "duration"],
                "not": {"anyOf": [{"required": key} for key in (["rate_per_s"], ["stages"], ["sweep"])]},
            },
        },
        {"if": {"required": ["stages"]}, "then": {"not": {"required": ["duration"]}}},
    ]
}


class Stage(StrictModel):
    """One stage of an open-model schedule; the rate moves to ``rate_per_s`` over ``duration``."""

    duration: Duration = Field(description="Length of the stage; 0s makes the rate jump at once.")
    rate_per_s: float = Field(
        ge=0, le=MAX_RATE_PER_S, description="Arrival rate reached at the end of the stage, per second."
    )
    ramp: Literal["linear", "step"] = Field(
        "linear",
        description="linear: the rate moves in a straight line from the previous stage's rate; "
        "step: the rate is rate_per_s for the whole stage.",
    )

    @field_validator("duration")
    @classmethod
    def _bounded(cls, seconds: float) -> float:
        if seconds > MAX_DURATION_S:
            raise ValueError(f"must be at most {format_duration(MAX_DURATION_S)}")
        return seconds


class SweepSpec(StrictModel):
    """A search for the highest constant arrival rate whose trial meets every SLO of the scenario."""

    start_rate_per_s: float = Field(
        gt=0,
        le=MAX_RATE_PER_S,
        description="Rate of the first trial, per second; it doubles until a trial fails.",
    )
    max_rate_per_s: float = Field(gt=0, le=MAX_RATE_PER_S, description="Highest rate tried, per second.")
    precision: Percent = Field(
        0.05,
        description="Bisection stops when the failing rate is within this share above the passing one.",
    )
    max_trials: int = Field(12, ge=1, le=100, description="Cap on trials, whatever the precision reached.")

    @model_validator(mode="after")
    def _ordered(self) -> SweepSpec:
        if self.max_rate_per_s < self.start_rate_per_s:
            raise ValueError(
                f"max_rate_per_s ({self.max_rate_per_s:g}) is below start_rate_per_s "
                f"({self.start_rate_per_s:g}); raise max_rate_per_s or lower start_rate_per_s"
            )
        if self.precision <= 0:
            raise ValueError("precision must be greater than 0%, for example 5%")
        return self


class LoadSpec(StrictModel):
    """How traffic is generated: an open model (arrival rate) or a closed model (fixed users)."""

    model_config = ConfigDict(json_schema_extra=_LOAD_JSON_SCHEMA_RULES)

    engine: Literal["builtin", "locust"] = Field(
        "builtin",
        description="builtin: slogate's asyncio engine in the harness process; locust: a Locust master "
        "and `workers` worker processes.",
    )
    workers: int = Field(1, ge=1, le=MAX_WORKERS, description="Locust engine only: worker processes.")
    model: Literal["open", "closed"] = Field(
        "closed",
        description="open: requests arrive on a schedule whatever the latency; "
        "closed: each of `users` sends its next request when the previous one ends.",
    )
    arrival: Literal["constant", "poisson"] = Field(
        "constant",
        description="Open model: constant spaces requests evenly; poisson draws exponential gaps "
        "with the same mean rate (seeded by `seed`).",
    )
    stages: list[Stage] | None = Field(
        None,
        min_length=1,
        max_length=MAX_STAGES,
        description="Open model: ramps and steps of the arrival rate; the schedule lasts their sum.",
    )
    start_rate_per_s: float = Field(
        0.0, ge=0, le=MAX_RATE_PER_S, description="Open model with stages: the rate before the first stage."
    )
    sweep: SweepSpec | None = Field(
        None,
        description="Open model: find the capacity; each trial runs a constant rate for `duration`.",
    )
    rate_per_s: float | None = Field(
        None,
        ge=0.001,
        le=MAX_RATE_PER_S,
        validate_default=True,
        description="Open model: a constant arrival rate, per second.",
    )
    users: int | None = Field(
        None, ge=1, le=10_000, validate_default=True, description="Concurrent users of the closed model."
    )
    duration: Duration | None = Field(
        None,
        validate_default=True,
        description="How long requests are started (at most 7 days); in-flight ones then finish. "
        "Not with stages, whose durations add up to the schedule.",
    )
    warmup: Duration = Field(
        0.0,
        description="The first part of the schedule (of each trial, in a sweep): its requests are sent "
        "and written out but left out of measurements and SLOs.",
    )
    max_requests: int = Field(100_000, ge=1, description="Cap on requests started, whatever the duration.")
    max_in_flight: int = Field(
        1000,
        ge=1,
        description="Open model: requests allowed in flight before new ones wait; a request that cannot "
        "be sent before the load ends counts as dropped.",
    )
    max_send_lag_p99: Duration = Field(
        0.1,
        description="When the p99 send lag (actual minus intended send, of requests that did not wait "
        "for a slot) is above this, the load generator fell behind and the run fails as untrustworthy.",
    )
    timeout: Duration = Field(
        60.0,
        description="Per-request limit (at most 1h), counted from the intended start; a slower request "
        "is a timeout error.",
    )
    seed: int = Field(0, description="Seed of the request kind draws and of Poisson arrivals.")
    stream: bool = Field(True, description="Send streaming requests (SSE) and measure TTFT.")
    requests: list[RequestSpec] = Field(min_length=1)

    @field_validator("timeout", "max_send_lag_p99", "warmup")
    @classmethod
    def _bounded(cls, seconds: float, info: ValidationInfo) -> float:
        if seconds <= 0 and info.field_name != "warmup":
            raise ValueError("must be longer than 0s")
        longest = MAX_TIMEOUT_S if info.field_name == "timeout" else MAX_DURATION_S
        if seconds > longest:
            raise ValueError(f"must be at most {format_duration(longest)}")
        return seconds

    @field_validator("workers")
    @classmethod
    def _workers_need_locust(cls, workers: int, info: ValidationInfo) -> int:
        if workers != 1 and info.data.get("engine") == "builtin":
            raise ValueError("workers applies to engine: locust; the builtin engine runs in one process")
        return workers

    @field_validator("arrival", "stages", "start_rate_per_s", "sweep")
    @classmethod
    def _open_model_only(cls, value: Any, info: ValidationInfo) -> Any:
        if info.data.get("model") == "closed" and value not in (None, 0.0, "constant"):
            raise ValueError(f"{info.field_name} applies to the open model; the closed model uses users")
        if info.field_name == "stages" and value is not None and sum(s.duration for s in value) <= 0:
            raise ValueError("the stages last 0s in total; give at least one stage a duration")
        if info.field_name == "start_rate_per_s" and value and info.data.get("stages") is None:
            raise ValueError("start_rate_per_s applies to stages only")
        return value

    @field_validator("rate_per_s")
    @classmethod
    def _one_open_schedule(cls, rate: float | None, info: ValidationInfo) -> float | None:
        """Require one of rate_per_s, stages and sweep in the open model, and none in the closed one."""
        workload = info.data.get("model")
        if workload == "closed":
            if rate is not None:
                raise ValueError("rate_per_s applies to the open model; the closed model uses users")
            return rate
        given = [name for name in ("stages", "sweep") if info.data.get(name) is not None]
        given += ["rate_per_s"] if rate is not None else []
        # A schedule key that failed its own validation is missing from info.data: it was given.
        settled = "stages" in info.data and "sweep" in info.data
        if workload == "open" and not given and settled:
            raise ValueError("the open model needs rate_per_s (for example rate_per_s: 20), stages or sweep")
        if len(given) > 1:
            raise ValueError(f"give only one of rate_per_s, stages and sweep; got {' and '.join(given)}")
        return rate

    @field_validator("users")
    @classmethod
    def _users_fit_model(cls, users: int | None, info: ValidationInfo) -> int | None:
        workload = info.data.get("model")
        if workload == "closed" and users is None:
            raise ValueError("the closed model needs users (for example users: 4)")
        if workload == "open" and users is not None:
            raise ValueError("users applies to the closed model; the open model uses rate_per_s")
        return users

    @field_validator("duration")
    @classmethod
    def _duration_fits_schedule(cls, seconds: float | None, info: ValidationInfo) -> float | None:
        if info.data.get("stages") is not None or "stages" not in info.data:
            if seconds is not None:
                raise ValueError("with stages, the schedule lasts the sum of the stage durations; remove it")
            return None
        if seconds is None:
            raise PydanticCustomError("missing", "Field required")
        if seconds <= 0:
            raise ValueError("must be longer than 0s")
        if seconds > MAX_DURATION_S:
            raise ValueError(f"must be at most {format_duration(MAX_DURATION_S)}")
        return seconds

    @field_validator("warmup")
    @classmethod
    def _warmup_shorter_than_schedule(cls, warmup: float, info: ValidationInfo) -> float:
        stages = info.data.get("stages")
        schedule = sum(stage.duration for stage in stages) if stages else info.data.get("duration")
        if warmup and schedule is not None and warmup >= schedule:
            raise ValueError(
                f"the warm-up ({format_duration(warmup)}) must be shorter than the schedule "
                f"({format_duration(schedule)}), or nothing would be measured"
            )
        return warmup

    @property
    def schedule_s(self) -> float:
        """How long one run of the schedule starts requests: the duration, or the sum of the stages."""
        if self.stages is not None:
            return sum(stage.duration for stage in self.stages)
        assert self.duration is not None
        return self.duration

    def time_limit_s(self) -> float:
        """Return an upper bound of the whole load's time: every trial of a sweep, and its last request."""
        trials = self.sweep.max_trials if self.sweep is not None else 1
        return trials * (self.schedule_s + self.timeout)

    def scaled(self, factor: float) -> LoadSpec:
        """Return a copy whose schedule durations (duration, stages, warm-up) are multiplied by ``factor``."""
        update: dict[str, Any] = {"warmup": self.warmup * factor}
        if self.duration is not None:
            update["duration"] = self.duration * factor
        if self.stages is not None:
            update["stages"] = [
                stage.model_copy(update={"duration": stage.duration * factor}) for stage in self.stages
            ]
        return self.model_copy(update=update)
