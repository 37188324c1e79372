import math

import pytest

from harness.scenario.units import format_duration, parse_duration, parse_percent, parse_rate


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("2min", 120.0),
        ("1h", 3600.0),
        ("500us", 0.0005),
        (0, 0.0),
    ],
)
def test_parse_duration_units(text: str | int, seconds: float) -> None:
    assert math.isclose(parse_duration(text), seconds)


@pytest.mark.parametrize("text", ["10", 10, "10 parsecs", "s", "-1s", "1.5.2s", True, None, [1]])
def test_parse_duration_rejects_invalid(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_parse_duration_bare_number_names_units() -> None:
    with pytest.raises(ValueError, match=r"has no unit: .*ms, s"):
        parse_duration(30)


@pytest.mark.parametrize(("text", "fraction"), [("1%", 0.01), ("0.5%", 0.005), ("100%", 1.0), (0, 0.0)])
def test_parse_percent_forms(text: str | float, fraction: float) -> None:
    assert math.isclose(parse_percent(text), fraction)


def test_parse_percent_bare_fraction_rejected() -> None:
    with pytest.raises(ValueError, match=r"has no % sign"):
        parse_percent(0.5)


@pytest.mark.parametrize("text", ["101%", 1.5, -0.1, "1 percent", "nan", float("nan")])
def test_parse_percent_rejects_out_of_range(text: object) -> None:
    with pytest.raises(ValueError, match="percentage"):
        parse_percent(text)


@pytest.mark.parametrize(("text", "per_s"), [(20, 20.0), ("20/s", 20.0), ("1200/min", 20.0), ("3600/h", 1.0)])
def test_parse_rate_forms(text: str | int, per_s: float) -> None:
    assert math.isclose(parse_rate(text), per_s)


def test_parse_rate_rejects_text() -> None:
    with pytest.raises(ValueError, match="invalid rate"):
        parse_rate("fast")


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.25, "250ms"), (1.5, "1.5s"), (120.0, "2m"), (90.0, "90s"), (0, "0s")]
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert math.isclose(parse_duration(text), seconds)
