"""Scenario settings of the stack a managed backend starts: gateway replicas and mock upstreams."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from harness.scenario.base import Name, StrictModel
from harness.scenario.units import Percent

DEFAULT_MODEL_ALIAS = "mock-llm"


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

    def model_routes(self) -> dict[str, str]:
        """Return model alias to upstream name, with the default route filled in."""
        if self.models:
            return dict(self.models)
        return {DEFAULT_MODEL_ALIAS: next(iter(self.upstreams))}
