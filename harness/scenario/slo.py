"""Scenario objectives: a metric, at a percentile for latencies, compared with a limit in its unit.

Two forms say the same thing: the short form (``{metric: ttft, percentile: 95, max: 300ms}``)
and a long form modelled on OpenSLO (``thresholdMetric`` or ``ratioMetric`` with a ``target``
share of good occurrences). Either can be scoped to a phase around a fault.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from harness.metrics.definitions import METRICS, MetricKind
from harness.scenario.base import GateMode, Name, StrictModel
from harness.scenario.units import (
    DURATION_PATTERN,
    PERCENT_PATTERN,
    RATE_PATTERN,
    THRESHOLD_JSON_SCHEMA,
    USD_PATTERN,
    Percent,
    parse_duration,
    parse_percent,
    parse_rate,
    parse_usd,
)

Phase = Literal["run", "before", "during", "after"]
FaultRef = Annotated[
    int | Name,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}],
            "description": "A fault's position in `faults` (from 0) or its `name`.",
        }
    ),
]

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
    MetricKind.DURATION: parse_duration,
    MetricKind.COST: parse_usd,
}


def _metrics_of(kind: MetricKind) -> list[str]:
    return [name for name, definition in METRICS.items() if definition.kind is kind]


_DURATION_STRING = {"type": "string", "pattern": DURATION_PATTERN}
_PERCENT_STRING = {"type": "string", "pattern": PERCENT_PATTERN}
_RATE_NUMBER_OR_STRING = {"anyOf": [{"type": "number"}, {"type": "string", "pattern": RATE_PATTERN}]}
_USD_NUMBER_OR_STRING = {"anyOf": [{"type": "number"}, {"type": "string", "pattern": USD_PATTERN}]}


def _limit_schema(pattern_or_number: dict[str, Any]) -> dict[str, Any]:
    limit = {"anyOf": [pattern_or_number, {"const": 0}]}
    return {"properties": {"max": limit, "min": limit}}


_WITHOUT_PERCENTILE = [
    *_metrics_of(MetricKind.RATIO),
    *_metrics_of(MetricKind.RATE),
    *_metrics_of(MetricKind.DURATION),
    *_metrics_of(MetricKind.COST),
]

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
        {
            "if": {"properties": {"metric": {"enum": _metrics_of(MetricKind.DURATION)}}},
            "then": _limit_schema(_DURATION_STRING),
        },
        {
            "if": {"properties": {"metric": {"enum": _metrics_of(MetricKind.COST)}}},
            "then": _limit_schema(_USD_NUMBER_OR_STRING),
        },
    ],
}


class _ScopedObjective(StrictModel):
    """Fields every objective has, in either form: its phase, its fault, its gate and its label."""

    phase: Phase = Field(
        "run",
        description="run (default): the whole load; before, during or after: the requests whose "
        "intended start falls before the fault was applied, while it lasted, or after it was removed.",
    )
    fault: FaultRef | None = Field(
        None,
        description="The fault a phase (or recovery_time) refers to: its position from 0 or its name; "
        "may be left out when the scenario has one fault.",
    )
    gate: GateMode | None = Field(None, description="block or warn; default is the scenario's gate.")
    name: str | None = Field(None, max_length=120, description="Label in reports; default is generated.")


class SLOSpec(_ScopedObjective):
    """One objective in the short form: a metric (at a percentile, for latencies) compared with a limit."""

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

    @property
    def target(self) -> float | None:
        """The long form's share of good occurrences; None, since the short form states none."""
        return None


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


PER_REQUEST_KINDS = (MetricKind.LATENCY, MetricKind.REQUEST_RATE)
RatioEvent = Literal[
    "requests", "judged", "successes", "errors", "rate_limited", "cache_hits", "cache_lookups"
]
RATIO_METRICS: dict[tuple[str, str, str], str] = {
    ("good", "successes", "judged"): "availability",
    ("bad", "errors", "judged"): "error_rate",
    ("bad", "rate_limited", "requests"): "rate_limited",
    ("good", "cache_hits", "cache_lookups"): "cache_hit_ratio",
}
"""The ratios the long form can name, as (good or bad, event, total), and the metric each one is."""


def _ratio_forms() -> str:
    return "; ".join(f"{{{side}: {event}, total: {total}}}" for side, event, total in RATIO_METRICS)


class ThresholdMetricSpec(StrictModel):
    """A per-request metric and the threshold that makes one occurrence good."""

    metric: str = Field(description="A per-request metric: e2e_latency, ttft, itl, tpot, send_lag, ...")
    op: Literal["lte", "gte"] = Field(
        description="lte: a request is good when its value is at most `value`; gte: at least `value`."
    )
    value: Threshold = Field(description="The threshold: a duration, or a rate for output_tokens_per_s.")

    @field_validator("metric")
    @classmethod
    def _per_request_metric(cls, metric: str) -> str:
        allowed = [name for name, d in METRICS.items() if d.kind in PER_REQUEST_KINDS]
        allowed.remove("cache_latency_saved")
        if metric not in allowed:
            raise ValueError(
                f"thresholdMetric needs a per-request metric, got {metric!r}; allowed: {', '.join(allowed)}"
            )
        return metric

    @field_validator("value", mode="before")
    @classmethod
    def _value_in_metric_units(cls, value: Any, info: ValidationInfo) -> float | None:
        definition = METRICS.get(info.data.get("metric", ""))
        if definition is None:
            return None
        return _THRESHOLD_PARSERS[definition.kind](value)


class RatioMetricSpec(StrictModel):
    """Good (or bad) occurrences over a total, each a named count of requests."""

    good: RatioEvent | None = Field(None, description="The count of good occurrences, such as successes.")
    bad: RatioEvent | None = Field(None, description="The count of bad occurrences, such as errors.")
    total: RatioEvent = Field(description="The count both are shares of, such as judged (not 429).")

    @model_validator(mode="after")
    def _known_ratio(self) -> RatioMetricSpec:
        if (self.good is None) == (self.bad is None):
            raise ValueError("a ratioMetric needs exactly one of good or bad, and total")
        if self.key not in RATIO_METRICS:
            raise ValueError(f"unsupported ratio; use one of: {_ratio_forms()}")
        return self

    @property
    def key(self) -> tuple[str, str, str]:
        side, event = ("good", self.good) if self.good is not None else ("bad", self.bad)
        assert event is not None
        return side, event, self.total


class OpenSLOSpec(_ScopedObjective):
    """One objective in the long form: a share (`target`) of occurrences that must be good."""

    thresholdMetric: ThresholdMetricSpec | None = Field(
        None, description="Per-request occurrences: each request is good when it meets the threshold."
    )
    ratioMetric: RatioMetricSpec | None = Field(
        None, description="Counted occurrences: good (or bad) requests over a total."
    )
    target: Percent = Field(description="The share of occurrences that must be good, such as 99.5%.")
    budgetingMethod: Literal["occurrences"] = Field(
        "occurrences",
        description="occurrences (the only method): the budget is a share of the requests of the phase.",
    )

    @field_validator("budgetingMethod", mode="before")
    @classmethod
    def _occurrences_only(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() == "occurrences":
            return "occurrences"
        raise ValueError(
            f"budgetingMethod {value!r} is not supported; use occurrences, since a run is judged by its "
            "requests, not by time slices"
        )

    @model_validator(mode="after")
    def _one_indicator(self) -> OpenSLOSpec:
        if (self.thresholdMetric is None) == (self.ratioMetric is None):
            raise ValueError("a long-form objective needs exactly one of thresholdMetric or ratioMetric")
        if not 0 < self.target <= 1:
            raise ValueError(f"target must be above 0% and at most 100%, got {self.target * 100:g}%")
        threshold = self.thresholdMetric
        if threshold is not None and threshold.op == "gte" and self.target == 1:
            raise ValueError("target 100% with op gte has no percentile; use a target below 100%")
        return self

    @property
    def metric(self) -> str:
        if self.thresholdMetric is not None:
            return self.thresholdMetric.metric
        assert self.ratioMetric is not None
        return RATIO_METRICS[self.ratioMetric.key]

    @property
    def percentile(self) -> float | None:
        """The percentile that meets the target: p95 for 95% lte; p5 for 95% gte."""
        threshold = self.thresholdMetric
        if threshold is None:
            return None
        share = self.target if threshold.op == "lte" else 1 - self.target
        return round(share * 100, 6)

    @property
    def comparator(self) -> Literal["max", "min"]:
        if self.thresholdMetric is not None:
            return "max" if self.thresholdMetric.op == "lte" else "min"
        assert self.ratioMetric is not None
        return "min" if self.ratioMetric.good is not None else "max"

    @property
    def limit(self) -> float:
        if self.thresholdMetric is not None:
            assert self.thresholdMetric.value is not None
            return self.thresholdMetric.value
        assert self.ratioMetric is not None
        return self.target if self.ratioMetric.good is not None else round(1 - self.target, 12)


def _slo_form(value: Any) -> str:
    if isinstance(value, dict) and ("thresholdMetric" in value or "ratioMetric" in value):
        return "long"
    if isinstance(value, OpenSLOSpec):
        return "long"
    return "short"


AnySLO = Annotated[
    Annotated[SLOSpec, Tag("short")] | Annotated[OpenSLOSpec, Tag("long")],
    Discriminator(_slo_form),
]
"""An objective in either form; a mapping with thresholdMetric or ratioMetric is the long form."""
