"""Scenario checks: rules about individual responses that a single metric cannot express."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from harness.scenario.base import GateMode, StrictModel


class _CheckBase(StrictModel):
    gate: GateMode | None = Field(None, description="block or warn; default is the scenario's gate.")
    name: str | None = Field(None, max_length=120, description="Label in reports; default is generated.")


class AdmittedCheck(_CheckBase):
    """Successful responses of one tenant stay within bounds, such as exactly a rate limit."""

    type: Literal["admitted"]
    tenant: str
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _some_bound(self) -> AdmittedCheck:
        if self.min is None and self.max is None:
            raise ValueError("an admitted check needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class RateLimitHeadersCheck(_CheckBase):
    """Responses of tenants with limits carry the x-ratelimit-* headers, and every 429 a Retry-After."""

    type: Literal["ratelimit_headers"]


class RetryAfterCheck(_CheckBase):
    """After the load, some 429s are retried once their Retry-After has passed; each retry must succeed."""

    type: Literal["retry_after"]
    samples: int = Field(5, ge=1, le=100, description="How many 429s to retry.")


class CacheIsolationCheck(_CheckBase):
    """No tenant's first response to a request body is a cache hit: tenants never share an entry."""

    type: Literal["cache_isolation"]


class NoStatusCheck(_CheckBase):
    """None of the listed HTTP statuses occurs."""

    type: Literal["no_status"]
    statuses: list[int] = Field(min_length=1)


CheckSpec = Annotated[
    AdmittedCheck | RateLimitHeadersCheck | RetryAfterCheck | CacheIsolationCheck | NoStatusCheck,
    Field(discriminator="type"),
]
