"""Scenario settings of the stack a managed backend starts: gateway replicas and mock upstreams."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from harness.scenario.base import Name, StrictModel
from harness.scenario.units import Duration, Percent

DEFAULT_MODEL_ALIAS = "mock-llm"
DEFAULT_TENANT = "default"


class RetrySpec(StrictModel):
    """The gateway's retries of one upstream (gateway key ``upstreams.<name>.retry``)."""

    max_attempts: int = Field(3, ge=1, le=10, description="Attempts per request, the first included.")
    base_backoff: Duration = Field(
        0.1, description="Cap of the first retry's random wait; doubles per retry."
    )
    max_backoff: Duration = Field(
        2.0, description="Cap of every wait; a longer Retry-After is not waited for."
    )
    budget_ratio: Percent = Field(0.2, description="Retries allowed per first attempt in the budget window.")
    budget_min_retries: int = Field(
        10, ge=0, description="Retries allowed in any window whatever the traffic."
    )
    budget_window: Duration = Field(10.0, description="Rolling window of the retry budget.")


class BreakerSpec(StrictModel):
    """The gateway's circuit breaker of one upstream (gateway key ``upstreams.<name>.breaker``)."""

    enabled: bool = True
    failure_ratio: Percent = Field(0.5, description="Failed share of the calls in the window that opens it.")
    min_calls: int = Field(20, ge=1, description="Calls in the window before it may open.")
    window: Duration = Field(10.0, description="Rolling window of call outcomes.")
    cooldown: Duration = Field(5.0, description="Time open before it admits probes.")
    half_open_probes: int = Field(1, ge=1, description="Probe calls admitted while half-open.")


class UpstreamSpec(StrictModel):
    """A mock upstream LLM that a managed stack starts behind the gateway, and how the gateway calls it.

    The first group of fields sets the mock's behaviour; the timeouts, ``retry`` and ``breaker``
    are the gateway's settings for this upstream.
    """

    ttft_ms: float = Field(50.0, ge=0, description="Time to first content token, from request arrival.")
    tokens_per_s: float = Field(200.0, ge=0, description="Output pacing; 0 sends every token at once.")
    output_tokens: int = Field(
        32, ge=1, le=100_000, description="Completion length before max_tokens cuts it."
    )
    chunk_tokens: int = Field(1, ge=1, le=1000, description="Tokens per SSE chunk.")
    error_rate: Percent = Field(0.0, description="Share of requests answered with error_status.")
    wrong_answer_rate: Percent = Field(
        0.05, description="Share of the mock's answer-table questions answered wrongly, for eval gates."
    )
    error_status: int = Field(500, ge=400, le=599, description="HTTP status of the injected errors.")
    seed: int = Field(0, description="Seed for the generated text and the error draws.")
    startup_delay: Duration = Field(
        0.0, description="Time the mock takes to start serving, as a model server loading its weights."
    )
    connect_timeout: Duration = Field(2.0, description="Gateway: connect, including the wait for a slot.")
    first_token_timeout: Duration = Field(
        60.0, description="Gateway: from sending a stream to its first token."
    )
    idle_timeout: Duration = Field(30.0, description="Gateway: maximum gap between stream chunks.")
    total_timeout: Duration = Field(300.0, description="Gateway: one whole attempt.")
    retry: RetrySpec = Field(default_factory=RetrySpec)
    breaker: BreakerSpec = Field(default_factory=BreakerSpec)

    def gateway_settings(self) -> dict[str, object]:
        """Return this upstream's gateway config keys, in the gateway's units."""
        retry, breaker = self.retry, self.breaker
        return {
            "connect_timeout_s": self.connect_timeout,
            "first_token_timeout_s": self.first_token_timeout,
            "idle_timeout_s": self.idle_timeout,
            "total_timeout_s": self.total_timeout,
            "retry": {
                "max_attempts": retry.max_attempts,
                "base_backoff_s": retry.base_backoff,
                "max_backoff_s": retry.max_backoff,
                "budget_ratio": retry.budget_ratio,
                "budget_min_retries": retry.budget_min_retries,
                "budget_window_s": retry.budget_window,
            },
            "breaker": {
                "enabled": breaker.enabled,
                "failure_ratio": breaker.failure_ratio,
                "min_calls": breaker.min_calls,
                "window_s": breaker.window,
                "cooldown_s": breaker.cooldown,
                "half_open_probes": breaker.half_open_probes,
            },
        }


class FallbackModelSpec(StrictModel):
    """A fallback to the whole chain of another model alias."""

    model: Name


class ModelRouteSpec(StrictModel):
    """A model alias's upstream and the fallbacks the gateway tries in order when it fails."""

    upstream: Name
    fallbacks: list[Name | FallbackModelSpec] = Field(
        default_factory=list, description="Upstream names, or {model: <alias>} for another alias's chain."
    )


class ModelLimitsSpec(StrictModel):
    """Limits of one key on one model alias."""

    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)


class TenantLimitsSpec(StrictModel):
    """The gateway's limits for a tenant; per-minute limits count per API key."""

    requests_per_minute: int | None = Field(None, ge=1, description="Per key.")
    tokens_per_minute: int | None = Field(None, ge=1, description="Per key.")
    models: dict[str, ModelLimitsSpec] = Field(default_factory=dict, description="Per key and model alias.")
    concurrency: int | None = Field(None, ge=1, description="Requests in flight for the whole tenant.")
    daily_tokens: int | None = Field(None, ge=1, description="Tokens per UTC day for the whole tenant.")


class TenantSpec(StrictModel):
    """A tenant of the gateway; the stack generates its API key, and requests name it by `tenant`."""

    limits: TenantLimitsSpec = Field(default_factory=TenantLimitsSpec)


class CacheSpec(StrictModel):
    """The gateway's response cache in Redis."""

    enabled: bool = False
    ttl: Duration = Field(300.0, description="How long an entry lives.")
    max_entry_bytes: int = Field(1024 * 1024, ge=1, description="Larger responses are not stored.")


class RateLimitSpec(StrictModel):
    """How the gateway counts limits and what it does when Redis fails."""

    window: Duration = Field(
        60.0, description="Sliding window; a per-minute limit allows limit * window / 60s in any window."
    )
    completion_token_estimate: int = Field(256, ge=1, description="Tokens reserved without max_tokens.")
    on_redis_error: Literal["fail_open", "fail_closed"] = Field(
        "fail_open", description="fail_open admits unchecked; fail_closed answers 503 with Retry-After."
    )


class LoadSheddingSpec(StrictModel):
    """Per-replica caps on requests in flight; past one, the gateway answers 503 with Retry-After."""

    max_in_flight: int | None = Field(None, ge=1, description="All tenants together.")
    max_in_flight_per_tenant: int | None = Field(None, ge=1)
    retry_after: Duration = Field(1.0, description="Retry-After of the 503, rounded up to whole seconds.")


class ShutdownSpec(StrictModel):
    """The gateway's graceful shutdown on SIGTERM."""

    drain_timeout: Duration = Field(30.0, description="Time for requests in flight to finish.")


class StackSpec(StrictModel):
    """The services a managed backend starts; requests go to the gateway replicas."""

    replicas: int = Field(1, ge=1, le=16, description="Gateway processes sharing one Redis.")
    upstreams: dict[Name, UpstreamSpec] = Field(
        default_factory=lambda: {"primary": UpstreamSpec()},
        description="Mock upstream LLMs by name.",
    )
    models: dict[Name, Name | ModelRouteSpec] | None = Field(
        None,
        description=f"Model alias to an upstream name or to {{upstream, fallbacks}}; by default "
        f"{DEFAULT_MODEL_ALIAS!r} goes to the first upstream.",
    )
    tenants: dict[Name, TenantSpec] = Field(
        default_factory=lambda: {DEFAULT_TENANT: TenantSpec()},
        description=f"Tenants, each with a generated API key; by default one, {DEFAULT_TENANT!r}, "
        "without limits.",
    )
    cache: CacheSpec = Field(default_factory=CacheSpec)
    rate_limits: RateLimitSpec = Field(default_factory=RateLimitSpec)
    load_shedding: LoadSheddingSpec = Field(default_factory=LoadSheddingSpec)
    shutdown: ShutdownSpec = Field(default_factory=ShutdownSpec)
    proxy_gateways: bool = Field(
        False,
        description="Send the load through the fault proxy to each gateway replica, so network faults "
        "can target gateway.<n>; Redis and the upstreams are always behind it.",
    )

    @field_validator("upstreams")
    @classmethod
    def _at_least_one_upstream(cls, upstreams: dict[str, UpstreamSpec]) -> dict[str, UpstreamSpec]:
        if not upstreams:
            raise ValueError("a stack needs at least one upstream")
        return upstreams

    @field_validator("models")
    @classmethod
    def _models_route_to_known_upstreams(
        cls, models: dict[str, str | ModelRouteSpec] | None, info: ValidationInfo
    ) -> dict[str, str | ModelRouteSpec] | None:
        upstreams = info.data.get("upstreams") or {}
        for alias, route in (models or {}).items():
            names = [route] if isinstance(route, str) else [route.upstream, *_fallback_upstreams(route)]
            for upstream in names:
                if upstreams and upstream not in upstreams:
                    raise ValueError(
                        f"model {alias!r} routes to upstream {upstream!r}, which is not defined; "
                        f"defined upstreams: {', '.join(upstreams)}"
                    )
        return models

    @model_validator(mode="after")
    def _fallback_models_known_and_acyclic(self) -> StackSpec:
        routes = self.models or {}
        for alias in routes:
            self._check_chain(alias, [])
        return self

    def _check_chain(self, alias: str, path: list[str]) -> None:
        if alias in path:
            raise ValueError(f"models: fallback cycle {' -> '.join([*path[path.index(alias) :], alias])}")
        route = (self.models or {}).get(alias)
        if route is None:
            raise ValueError(f"model {path[-1]!r} falls back to model {alias!r}, which is not defined")
        if isinstance(route, ModelRouteSpec):
            for entry in route.fallbacks:
                if isinstance(entry, FallbackModelSpec):
                    self._check_chain(entry.model, [*path, alias])

    @field_validator("tenants")
    @classmethod
    def _at_least_one_tenant(
        cls, tenants: dict[str, TenantSpec], info: ValidationInfo
    ) -> dict[str, TenantSpec]:
        if not tenants:
            raise ValueError("a stack needs at least one tenant, since the gateway requires an API key")
        return tenants

    def model_routes(self) -> dict[str, str]:
        """Return model alias to its first upstream's name, with the default route filled in."""
        if self.models:
            return {
                alias: route if isinstance(route, str) else route.upstream
                for alias, route in self.models.items()
            }
        return {DEFAULT_MODEL_ALIAS: next(iter(self.upstreams))}

    def model_fallbacks(self) -> dict[str, list[str | FallbackModelSpec]]:
        """Return each model alias's fallbacks (empty for a plain upstream name)."""
        return {
            alias: list(route.fallbacks) if isinstance(route, ModelRouteSpec) else []
            for alias, route in (self.models or {}).items()
        }


def _fallback_upstreams(route: ModelRouteSpec) -> list[str]:
    return [entry for entry in route.fallbacks if isinstance(entry, str)]
