"""Scenario sections that tune gates beyond the objectives: cost limits, baseline comparison, recovery."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator

from harness.scenario.base import GateMode, StrictModel
from harness.scenario.units import USD_HELP, USD_PATTERN, Duration, Percent, parse_usd

Usd = Annotated[
    float,
    BeforeValidator(parse_usd),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": USD_PATTERN}],
            "description": f"Amount: {USD_HELP}.",
        }
    ),
]


class PriceSpec(StrictModel):
    """The price of one model's tokens, in US dollars per million tokens."""

    input_usd_per_million_tokens: float = Field(ge=0, description="Prompt (input) tokens.")
    output_usd_per_million_tokens: float = Field(ge=0, description="Completion (output) tokens.")


class CostSpec(StrictModel):
    """Prices of the models the load uses, and limits on what the run's tokens cost."""

    prices: dict[str, PriceSpec] = Field(
        default_factory=dict,
        description="Price by model name as requests send it; overrides the shipped price table.",
    )
    max_usd_per_1k_requests: Usd | None = Field(None, description="Limit on the cost of 1000 requests.")
    max_usd_total: Usd | None = Field(None, description="Limit on the cost of every measured request.")
    gate: GateMode | None = Field(None, description="block or warn; default is the scenario's gate.")


class BaselineSpec(StrictModel):
    """Settings of the comparison with the baseline run given by --baseline."""

    gate: GateMode | None = Field(
        None,
        description="block fails the run on a regression; warn only reports it. Default: the "
        "scenario's gate, unless --baseline-gate says otherwise.",
    )
    significance: Percent = Field(
        0.01, description="A difference counts only when its p-value is below this (default 1%)."
    )
    latency_tolerance: Percent = Field(
        0.10,
        description="Latency and per-request rates: a regression must move the objective's percentile "
        "by more than this share of the baseline's value (default 10%).",
    )
    ratio_tolerance: Percent = Field(
        0.01,
        description="Ratios such as error_rate: a regression must move the ratio by more than this many "
        "percentage points (default 1%).",
    )
    rate_tolerance: Percent = Field(
        0.10,
        description="Throughput, goodput and cost: a regression must move the mean by more than this "
        "share of the baseline's value (default 10%).",
    )

    @field_validator("significance")
    @classmethod
    def _usable_significance(cls, value: float) -> float:
        if not 0 < value <= 0.2:
            raise ValueError(f"significance must be above 0% and at most 20%, got {value * 100:g}%")
        return value


class RecoverySpec(StrictModel):
    """Settings of the recovery time measured after each fault is removed."""

    window: Duration = Field(
        2.0, description="Length of the rolling window of intended starts (default 2s); not scaled."
    )
    latency_tolerance: Percent = Field(
        0.5,
        description="The band's latency limit: the before phase's p95 E2E latency times (1 + this); "
        "default 50%.",
    )
    error_rate_tolerance: Percent = Field(
        0.01,
        description="The band's error limit: the before phase's error rate plus this many percentage "
        "points; default 1%.",
    )
    min_requests: int = Field(
        5, ge=1, le=10_000, description="Fewest requests a window needs before it can count as recovered."
    )

    @field_validator("window")
    @classmethod
    def _positive(cls, seconds: float) -> float:
        if seconds <= 0:
            raise ValueError("the recovery window must be longer than 0s")
        return seconds
