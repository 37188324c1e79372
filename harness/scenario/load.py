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


# Setting -> (the workload model it belongs to, an example, the other model's setting).
_WORKLOAD_SETTINGS = {
    "rate_per_s": ("open", "rate_per_s: 20", "users"),
    "users": ("closed", "users: 4", "rate_per_s"),
}

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

    @field_validator("rate_per_s", "users", mode="after")
    @classmethod
    def _setting_fits_model(cls, value: float | None, info: ValidationInfo) -> float | None:
        """Require rate_per_s for the open model and users for the closed one, and only there."""
        owner, example, other = _WORKLOAD_SETTINGS[info.field_name or ""]
        workload = info.data.get("model")
        if workload == owner and value is None:
            raise ValueError(f"the {owner} model needs {info.field_name} (for example {example})")
        if workload not in (owner, None) and value is not None:
            raise ValueError(
                f"{info.field_name} applies to the {owner} model; the {workload} model uses {other}"
            )
        return value
