"""Scenario settings of the stack a managed backend starts: gateway replicas and mock upstreams."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from harness.scenario.base import Name, StrictModel
from harness.scenario.units import Duration, Percent

DEFAULT_MODEL_ALIAS = "mock-llm"
DEFAULT_TENANT = "default"


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
    tenants: dict[Name, TenantSpec] = Field(
        default_factory=lambda: {DEFAULT_TENANT: TenantSpec()},
        description=f"Tenants, each with a generated API key; by default one, {DEFAULT_TENANT!r}, "
        "without limits.",
    )
    cache: CacheSpec = Field(default_factory=CacheSpec)
    rate_limits: RateLimitSpec = Field(default_factory=RateLimitSpec)
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
        cls, models: dict[str, str] | None, info: ValidationInfo
    ) -> dict[str, str] | None:
        upstreams = info.data.get("upstreams") or {}
        for alias, upstream in (models or {}).items():
            if upstreams and upstream not in upstreams:
                raise ValueError(
                    f"model {alias!r} routes to upstream {upstream!r}, which is not defined; "
                    f"defined upstreams: {', '.join(upstreams)}"
                )
        return models

    @field_validator("tenants")
    @classmethod
    def _at_least_one_tenant(
        cls, tenants: dict[str, TenantSpec], info: ValidationInfo
    ) -> dict[str, TenantSpec]:
        if not tenants:
            raise ValueError("a stack needs at least one tenant, since the gateway requires an API key")
        return tenants

    def model_routes(self) -> dict[str, str]:
        """Return model alias to upstream name, with the default route filled in."""
        if self.models:
            return dict(self.models)
        return {DEFAULT_MODEL_ALIAS: next(iter(self.upstreams))}
