"""Typed model of a scenario file (schema version 1).

Every model rejects unknown keys, so a misspelt field is an error instead of a setting that
silently keeps its default. Field descriptions end up in the JSON Schema that editors use.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from harness.metrics.definitions import METRICS, MetricKind
from harness.scenario.units import (
    THRESHOLD_JSON_SCHEMA,
    Duration,
    Percent,
    Rate,
    parse_duration,
    parse_percent,
    parse_rate,
)

SCENARIO_VERSION = 1
DEFAULT_MODEL_ALIAS = "mock-llm"

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
GateMode = Literal["block", "warn"]
Threshold = Annotated[float | None, WithJsonSchema(THRESHOLD_JSON_SCHEMA)]
PercentileValue = Annotated[
    float | None,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
                {"type": "string", "pattern": r"^[pP]?[0-9]*\.?[0-9]+$"},
                {"type": "null"},
            ]
        }
    ),
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpstreamSpec(StrictModel):
    """A mock upstream LLM that a managed stack starts behind the gateway."""

    ttft_ms: float = Field(50.0, ge=0, description="Time to first content token, from request arrival.")
    tokens_per_s: float = Field(200.0, ge=0, description="Output pacing; 0 sends every token at once.")
    output_tokens: int = Field(
        32, ge=1, le=100_000, description="Completion length before max_tokens cuts it."
    )
    chunk_tokens: int = Field(1, ge=1, le=1000, description="Tokens per SSE chunk.")
    error_rate: Percent = Field(0.0, description="Share of requests answered with HTTP 500.")
    seed: int = Field(0, description="Seed for the generated text and the error draws.")


class StackSpec(StrictModel):
    """The services a managed backend starts; requests go to the gateway replicas."""

    replicas: int = Field(1, ge=1, le=16, description="Gateway processes sharing one Redis.")
    upstreams: dict[Name, UpstreamSpec] = Field(
        default_factory=lambda: {"primary": UpstreamSpec()},
        description="Mock upstream LLMs by name.",
    )
    models: dict[Name, Name] | None = Field(
        None,
        description=f"Model alias to upstream name; by default {DEFAULT_MODEL_ALIAS!r} "
        "goes to the first upstream.",
    )

    @field_validator("upstreams")
    @classmethod
    def _at_least_one_upstream(cls, upstreams: dict[str, UpstreamSpec]) -> dict[str, UpstreamSpec]:
        if not upstreams:
            raise ValueError("a stack needs at least one upstream")
        return upstreams

    @model_validator(mode="after")
    def _models_route_to_known_upstreams(self) -> StackSpec:
        for alias, upstream in (self.models or {}).items():
            if upstream not in self.upstreams:
                raise ValueError(
                    f"model {alias!r} routes to upstream {upstream!r}, which is not defined; "
                    f"defined upstreams: {', '.join(self.upstreams)}"
                )
        return self

    def model_routes(self) -> dict[str, str]:
        """Return model alias to upstream name, with the default route filled in."""
        if self.models:
            return dict(self.models)
        return {DEFAULT_MODEL_ALIAS: next(iter(self.upstreams))}


class Message(StrictModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class RequestSpec(StrictModel):
    """One kind of chat completion request; the load engine picks kinds by weight."""

    weight: float = Field(1.0, gt=0, description="Relative share of requests of this kind.")
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


class LoadSpec(StrictModel):
    """How traffic is generated: an open model (arrival rate) or a closed model (fixed users)."""

    model: Literal["open", "closed"] = Field(
        "closed",
        description="open: requests arrive at rate_per_s whatever the latency; "
        "closed: each of `users` sends its next request when the previous one ends.",
    )
    rate_per_s: Rate | None = Field(None, gt=0, description="Arrival rate of the open model.")
    users: int | None = Field(None, ge=1, le=10_000, description="Concurrent users of the closed model.")
    duration: Duration = Field(description="How long requests are started; in-flight ones then finish.")
    max_requests: int = Field(100_000, ge=1, description="Cap on requests started, whatever the duration.")
    max_in_flight: int = Field(
        1000,
        ge=1,
        description="Open model: requests allowed in flight before new ones wait (and count as late).",
    )
    timeout: Duration = Field(60.0, description="Per-request limit; a slower request is a timeout error.")
    stream: bool = Field(True, description="Send streaming requests (SSE) and measure TTFT.")
    requests: list[RequestSpec] = Field(min_length=1)

    @field_validator("duration", "timeout")
    @classmethod
    def _positive(cls, seconds: float) -> float:
        if seconds <= 0:
            raise ValueError("must be longer than 0s")
        return seconds

    @model_validator(mode="after")
    def _settings_match_model(self) -> LoadSpec:
        if self.model == "open":
            if self.rate_per_s is None:
                raise ValueError("the open model needs rate_per_s (for example rate_per_s: 20)")
            if self.users is not None:
                raise ValueError("users applies to the closed model; the open model uses rate_per_s")
        else:
            if self.users is None:
                raise ValueError("the closed model needs users (for example users: 4)")
            if self.rate_per_s is not None:
                raise ValueError("rate_per_s applies to the open model; set model: open or remove it")
        return self


_THRESHOLD_PARSERS = {
    MetricKind.LATENCY: parse_duration,
    MetricKind.RATIO: parse_percent,
    MetricKind.RATE: parse_rate,
}


class SLOSpec(StrictModel):
    """One objective: a metric (at a percentile, for latencies) compared with a limit."""

    metric: str = Field(description=f"One of: {', '.join(METRICS)}.")
    percentile: PercentileValue = Field(
        None,
        validate_default=True,
        description="Latency metrics only: 50, 95, 99.9, or p95; 100 is the maximum.",
    )
    max: Threshold = Field(
        None, validate_default=True, description="Upper limit: a duration, a percentage or a rate."
    )
    min: Threshold = Field(
        None, validate_default=True, description="Lower limit: a duration, a percentage or a rate."
    )
    gate: GateMode | None = Field(None, description="block or warn; default is the scenario's gate.")
    name: str | None = Field(None, max_length=120, description="Label in reports; default is generated.")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; allowed metrics: {', '.join(METRICS)}")
        return metric

    @field_validator("percentile", mode="before")
    @classmethod
    def _percentile_fits_metric(cls, value: Any, info: ValidationInfo) -> float | None:
        definition = METRICS.get(info.data.get("metric", ""))
        if definition is None:
            return None
        if value is None:
            if definition.needs_percentile:
                raise ValueError(f"metric {definition.name!r} needs a percentile, for example percentile: 95")
            return None
        if not definition.needs_percentile:
            raise ValueError(
                f"metric {definition.name!r} is a {definition.kind.value}; it takes no percentile"
            )
        return parse_percentile(value)

    @field_validator("max", "min", mode="before")
    @classmethod
    def _threshold_in_metric_units(cls, value: Any, info: ValidationInfo) -> float | None:
        definition = METRICS.get(info.data.get("metric", ""))
        if value is None or definition is None:
            return None
        return _THRESHOLD_PARSERS[definition.kind](value)

    @model_validator(mode="after")
    def _one_limit(self) -> SLOSpec:
        if (self.max is None) == (self.min is None):
            raise ValueError("an SLO needs exactly one of max or min")
        return self

    @property
    def comparator(self) -> Literal["max", "min"]:
        return "max" if self.max is not None else "min"

    @property
    def limit(self) -> float:
        limit = self.max if self.max is not None else self.min
        assert limit is not None
        return limit


def parse_percentile(value: Any) -> float:
    """Parse ``95``, ``99.9``, ``"p95"`` or ``"95"`` into a percentile in (0, 100]."""
    text = str(value).strip()
    if isinstance(value, bool) or not text:
        raise ValueError(f"invalid percentile {value!r}: use a number in (0, 100], such as 95 or p99.9")
    number = text[1:] if text[0] in "pP" else text
    try:
        percentile = float(number)
    except ValueError:
        raise ValueError(
            f"invalid percentile {value!r}: use a number in (0, 100], such as 95 or p99.9"
        ) from None
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile {value!r} is outside (0, 100]; use for example 50, 95, 99.9 or 100")
    return percentile


class Scenario(StrictModel):
    """A scenario file: the stack to start, the load to send and the SLOs that gate the result."""

    version: Literal[1] = Field(description="Scenario schema version.")
    name: Name = Field(description="Unique name; reports and pytest test ids use it.")
    description: str = ""
    stack: StackSpec = Field(default_factory=StackSpec)
    load: LoadSpec
    slo: list[SLOSpec] = Field(min_length=1, description="Objectives; a scenario with none could never fail.")
    gate: GateMode = Field(
        "block", description="block fails the run when an SLO fails; warn only reports it."
    )

    def with_duration_scale(self, factor: float) -> Scenario:
        """Return a copy whose durations are multiplied by ``factor`` (thresholds are left alone)."""
        if factor == 1:
            return self
        load = self.load.model_copy(update={"duration": self.load.duration * factor})
        return self.model_copy(update={"load": load})
