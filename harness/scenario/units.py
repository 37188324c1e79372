"""Values with units in scenario files: durations, percentages and per-second rates.

A duration is a number with a unit (``250ms``, ``1.5s``, ``2m``, ``1h``); a bare number is
rejected because nobody can tell whether ``30`` meant seconds or milliseconds. A percentage
needs its ``%`` sign for the same reason (``0.5`` could mean 50% or 0.5%). A rate is a number
per second, or ``1200/min``. Zero is the one value accepted without a unit.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

DURATION_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
RATE_UNITS_PER_S = {"s": 1.0, "sec": 1.0, "m": 1 / 60, "min": 1 / 60, "h": 1 / 3600}

_NUMBER = r"(?P<number>[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"
_DURATION_RE = re.compile(rf"^{_NUMBER}\s*(?P<unit>us|ms|s|min|m|h)$")
_PERCENT_RE = re.compile(rf"^{_NUMBER}\s*%$")
_RATE_RE = re.compile(rf"^{_NUMBER}\s*/\s*(?P<unit>sec|s|min|m|h)$")

DURATION_HELP = "a number with a unit: us, ms, s, m (or min), h; for example 250ms, 30s, 2m"
PERCENT_HELP = "a percentage with a % sign, such as 1%, 0.5% or 100%"
RATE_HELP = "requests per second as a number, or with a unit: 20/s, 1200/min, 3600/h"
USD_HELP = "an amount in US dollars: a number, or with a $ sign or USD, such as 0.5, $0.50 or 2 USD"
_USD_RE = re.compile(rf"^(?:\$\s*{_NUMBER}|{_NUMBER.replace('number', 'usd_number')}\s*USD)$")


def _finite(value: float, help_text: str) -> float:
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"must be finite: {help_text}")
    return value


def parse_duration(value: Any) -> float:
    """Parse a duration into seconds; 0 is the only value accepted without a unit."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}: {DURATION_HELP}")
    if isinstance(value, int | float):
        if value == 0:
            return 0.0
        raise ValueError(f"the duration {value!r} has no unit: {DURATION_HELP}")
    if not isinstance(value, str):
        raise ValueError(f"expected a duration, got {value!r}: {DURATION_HELP}")
    match = _DURATION_RE.match(value.strip())
    if match is None:
        raise ValueError(f"invalid duration {value!r}: {DURATION_HELP}")
    return float(match["number"]) * DURATION_UNITS_S[match["unit"]]


def parse_percent(value: Any) -> float:
    """Parse a percentage into a fraction between 0 and 1."""
    if isinstance(value, bool):
        raise ValueError(f"expected a percentage, got {value!r}: {PERCENT_HELP}")
    if isinstance(value, int | float):
        if value != 0:
            raise ValueError(f"the percentage {value!r} has no % sign: {PERCENT_HELP}")
        fraction = 0.0
    elif isinstance(value, str) and (match := _PERCENT_RE.match(value.strip())):
        fraction = float(match["number"]) / 100
    else:
        raise ValueError(f"invalid percentage {value!r}: {PERCENT_HELP}")
    if not 0.0 <= _finite(fraction, PERCENT_HELP) <= 1.0:
        raise ValueError(f"percentage {value!r} is outside 0% to 100%: {PERCENT_HELP}")
    return fraction


def parse_rate(value: Any) -> float:
    """Parse a rate into events per second."""
    if isinstance(value, bool):
        raise ValueError(f"expected a rate, got {value!r}: {RATE_HELP}")
    if isinstance(value, int | float):
        rate = _finite(float(value), RATE_HELP)
        if rate < 0:
            raise ValueError(f"a rate cannot be negative, got {value!r}")
        return rate
    if isinstance(value, str) and (match := _RATE_RE.match(value.strip())):
        return float(match["number"]) * RATE_UNITS_PER_S[match["unit"]]
    raise ValueError(f"invalid rate {value!r}: {RATE_HELP}")


def parse_usd(value: Any) -> float:
    """Parse an amount in US dollars, not negative."""
    if isinstance(value, bool):
        raise ValueError(f"expected an amount, got {value!r}: {USD_HELP}")
    if isinstance(value, int | float):
        amount = _finite(float(value), USD_HELP)
    elif isinstance(value, str) and (match := _USD_RE.match(value.strip())):
        amount = float(match["number"] or match["usd_number"])
    else:
        raise ValueError(f"invalid amount {value!r}: {USD_HELP}")
    if amount < 0:
        raise ValueError(f"an amount cannot be negative, got {value!r}")
    return amount


def format_duration(seconds: float) -> str:
    """Format seconds the way a scenario author writes them: 250ms, 1.5s, 2m."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds < 120 or seconds % 60:
        return f"{seconds:g}s"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    return f"{seconds / 60:g}m"


def format_percent(fraction: float) -> str:
    return f"{fraction * 100:.4g}%"


DURATION_PATTERN = r"^[0-9]*\.?[0-9]+\s*(us|ms|s|min|m|h)$"
PERCENT_PATTERN = r"^[0-9]*\.?[0-9]+\s*%$"
RATE_PATTERN = r"^[0-9]*\.?[0-9]+\s*/\s*(sec|s|min|m|h)$"
USD_PATTERN = r"^(\$\s*[0-9]*\.?[0-9]+|[0-9]*\.?[0-9]+\s*USD)$"

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": DURATION_PATTERN}, {"const": 0}],
            "description": f"Duration: {DURATION_HELP}.",
            "examples": ["250ms", "30s", "2m"],
        }
    ),
]
"""Seconds in Python; a string with a unit in YAML."""

Percent = Annotated[
    float,
    BeforeValidator(parse_percent),
    PlainSerializer(format_percent, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": PERCENT_PATTERN}, {"const": 0}],
            "description": f"Percentage: {PERCENT_HELP}.",
            "examples": ["1%", "0.5%"],
        }
    ),
]
"""A fraction in Python; ``1%`` in YAML."""


THRESHOLD_JSON_SCHEMA = {
    "anyOf": [
        {"type": "number"},
        {"type": "string", "pattern": DURATION_PATTERN},
        {"type": "string", "pattern": PERCENT_PATTERN},
        {"type": "string", "pattern": RATE_PATTERN},
        {"type": "string", "pattern": USD_PATTERN},
        {"type": "null"},
    ],
    "description": "A duration for latency metrics, a percentage for ratios, a rate for throughput, "
    "an amount in US dollars for cost.",
}
