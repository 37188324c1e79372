"""Scenario objectives: a metric, at a percentile for latencies, compared with a limit in its unit."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationInfo, WithJsonSchema, field_validator, model_validator

from harness.metrics.definitions import METRICS, MetricKind
from harness.scenario.base import GateMode, StrictModel
from harness.scenario.units import (
    DURATION_PATTERN,
    PERCENT_PATTERN,
    RATE_PATTERN,
    THRESHOLD_JSON_SCHEMA,
    parse_duration,
    parse_percent,
    parse_rate,
)

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

_THRESHOLD_PARSERS = {
    MetricKind.LATENCY: parse_duration,
    MetricKind.RATIO: parse_percent,
    MetricKind.RATE: parse_rate,
    MetricKind.REQUEST_RATE: parse_rate,
}


def _metrics_of(kind: MetricKind) -> list[str]:
    return [name for name, definition in METRICS.items() if definition.kind is kind]


_DURATION_STRING = {"type": "string", "pattern": DURATION_PATTERN}
_PERCENT_STRING = {"type": "string", "pattern": PERCENT_PATTERN}
_RATE_NUMBER_OR_STRING = {"anyOf": [{"type": "number"}, {"type": "string", "pattern": RATE_PATTERN}]}


def _limit_schema(pattern_or_number: dict[str, Any]) -> dict[str, Any]:
    limit = {"anyOf": [pattern_or_number, {"const": 0}]}
    return {"properties": {"max": limit, "min": limit}}


_WITHOUT_PERCENTILE = _metrics_of(MetricKind.RATIO) + _metrics_of(MetricKind.RATE)

# Rules the JSON Schema states in addition to the field types, so editors flag what the loader rejects.
_SLO_JSON_SCHEMA_RULES: dict[str, Any] = {
    "oneOf": [{"required": ["max"]}, {"required": ["min"]}],
    "allOf": [
        {
            "if": {"properties": {"metric": {"enum": _metrics_of(MetricKind.LATENCY)}}},
            "then": {"required": ["percentile"], **_limit_schema(_DURATION_STRING)},
        },
        {
            "if": {"properties": {"metric": {"enum": _WITHOUT_PERCENTILE}}},
            "then": {"not": {"required": ["percentile"]}},
        },
        {
            "if": {"properties": {"metric": {"enum": _metrics_of(MetricKind.RATIO)}}},
            "then": _limit_schema(_PERCENT_STRING),
        },
        {
            "if": {"properties": {"metric": {"enum": _metrics_of(MetricKind.RATE)}}},
            "then": _limit_schema(_RATE_NUMBER_OR_STRING),
        },
        {
            "if": {"properties": {"metric": {"enum": _metrics_of(MetricKind.REQUEST_RATE)}}},
            "then": {"required": ["percentile"], **_limit_schema(_RATE_NUMBER_OR_STRING)},
        },
    ],
}


class SLOSpec(StrictModel):
    """One objective: a metric (at a percentile, for latencies) compared with a limit."""

    model_config = ConfigDict(json_schema_extra=_SLO_JSON_SCHEMA_RULES)

    metric: str = Field(
        description=f"One of: {', '.join(METRICS)}.", json_schema_extra={"enum": list(METRICS)}
    )
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
