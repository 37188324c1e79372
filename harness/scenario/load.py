"""Scenario settings of the load: the workload model, its limits and the request kinds."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from harness.scenario.base import StrictModel
from harness.scenario.units import Duration, format_duration

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
            mode="json", exclude_none=True, exclude={"weight", "extra_body", "headers", "model"}
        )
        body: dict[str, Any] = {"model": self.model or default_model, **fields, **self.extra_body}
        body["stream"] = stream
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body


_LOAD_JSON_SCHEMA_RULES: dict[str, Any] = {
    "if": {"properties": {"model": {"const": "open"}}, "required": ["model"]},
    "then": {"required": ["rate_per_s"], "not": {"required": ["users"]}},
    "else": {"required": ["users"], "not": {"required": ["rate_per_s"]}},
}


class LoadSpec(StrictModel):
    """How traffic is generated: an open model (arrival rate) or a closed model (fixed users)."""

    model_config = ConfigDict(json_schema_extra=_LOAD_JSON_SCHEMA_RULES)

    model: Literal["open", "closed"] = Field(
        "closed",
        description="open: requests arrive at rate_per_s whatever the latency; "
        "closed: each of `users` sends its next request when the previous one ends.",
    )
    rate_per_s: float | None = Field(
        None,
        ge=0.001,
        le=1_000_000,
        validate_default=True,
        description="Arrival rate of the open model, per second.",
    )
    users: int | None = Field(
        None, ge=1, le=10_000, validate_default=True, description="Concurrent users of the closed model."
    )
    duration: Duration = Field(
        description="How long requests are started (at most 7 days); in-flight ones then finish."
    )
    max_requests: int = Field(100_000, ge=1, description="Cap on requests started, whatever the duration.")
    max_in_flight: int = Field(
        1000,
        ge=1,
        description="Open model: requests allowed in flight before new ones wait; a request that cannot "
        "be sent before the load ends counts as dropped.",
    )
    timeout: Duration = Field(
        60.0,
        description="Per-request limit (at most 1h), counted from the intended start; a slower request "
        "is a timeout error.",
    )
    stream: bool = Field(True, description="Send streaming requests (SSE) and measure TTFT.")
    requests: list[RequestSpec] = Field(min_length=1)

    @field_validator("duration", "timeout")
    @classmethod
    def _positive_and_bounded(cls, seconds: float, info: ValidationInfo) -> float:
        if seconds <= 0:
            raise ValueError("must be longer than 0s")
        longest = MAX_DURATION_S if info.field_name == "duration" else MAX_TIMEOUT_S
        if seconds > longest:
            raise ValueError(f"must be at most {format_duration(longest)}")
        return seconds

    @field_validator("rate_per_s", mode="after")
    @classmethod
    def _rate_only_for_open_model(cls, rate: float | None, info: ValidationInfo) -> float | None:
        workload = info.data.get("model")
        if workload == "open" and rate is None:
            raise ValueError("the open model needs rate_per_s (for example rate_per_s: 20)")
        if workload == "closed" and rate is not None:
            raise ValueError("rate_per_s applies to the open model; set model: open or remove it")
        return rate

    @field_validator("users", mode="after")
    @classmethod
    def _users_only_for_closed_model(cls, users: int | None, info: ValidationInfo) -> int | None:
        workload = info.data.get("model")
        if workload == "closed" and users is None:
            raise ValueError("the closed model needs users (for example users: 4)")
        if workload == "open" and users is not None:
            raise ValueError("users applies to the closed model; the open model uses rate_per_s")
        return users
