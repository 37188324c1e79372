"""Token cost per request, per 1000 requests and in total, and what the cache saved."""

import pytest

from harness.cost.compute import CostAccumulator
from harness.cost.prices import SCENARIO_SOURCE, SHIPPED_PRICES, Price, price_table
from harness.metrics.records import RequestRecord, TokenSource
from harness.scenario.gates import PriceSpec

PRICE = Price(1.0, 2.0, "test")


def record(index: int, kind: int = 0, cache: str | None = None, warmup: bool = False) -> RequestRecord:
    return RequestRecord(
        index=index,
        kind=kind,
        replica=0,
        stream=False,
        intended_start=float(index),
        end=index + 0.1,
        status=200,
        prompt_tokens=1000,
        completion_tokens=500,
        token_source=TokenSource.USAGE,
        cache=cache,
        warmup=warmup,
    )


def test_request_cost_from_usage_tokens() -> None:
    assert PRICE.cost_usd(1000, 500) == pytest.approx(0.002)


def test_run_cost_per_1k_requests() -> None:
    accumulator = CostAccumulator({"m": PRICE}, ["m"])
    for index in range(4):
        accumulator.add(record(index))
    cost = accumulator.cost
    assert cost.requests == 4
    assert cost.total_usd == pytest.approx(0.008)
    assert cost.per_request_usd == pytest.approx(0.002)
    assert cost.per_1k_requests_usd == pytest.approx(2.0)


def test_cache_hit_costs_nothing_and_saves() -> None:
    accumulator = CostAccumulator({"m": PRICE}, ["m"])
    accumulator.add(record(0, cache="miss"))
    accumulator.add(record(1, cache="hit"))
    cost = accumulator.cost
    assert cost.total_usd == pytest.approx(0.002)
    assert cost.saved_usd == pytest.approx(0.002)
    assert cost.cache_hits == 1


def test_warmup_requests_cost_nothing() -> None:
    accumulator = CostAccumulator({"m": PRICE}, ["m"])
    accumulator.add(record(0, warmup=True))
    assert accumulator.cost.requests == 0


def test_unpriced_model_makes_total_unknown() -> None:
    accumulator = CostAccumulator({"m": PRICE}, ["m", "other"])
    accumulator.add(record(0))
    accumulator.add(record(1, kind=1))
    assert accumulator.cost.unpriced_models == ["other"]
    assert accumulator.cost.total_usd is None


def test_scenario_prices_override_shipped() -> None:
    table = price_table(
        {"mock-llm": PriceSpec(input_usd_per_million_tokens=9, output_usd_per_million_tokens=10)}
    )
    assert table["mock-llm"].input_usd_per_million_tokens == 9
    assert table["mock-llm"].source == SCENARIO_SOURCE
    assert table["gpt-4o"] == SHIPPED_PRICES["gpt-4o"]


def test_shipped_prices_name_their_source() -> None:
    assert all(price.source for price in SHIPPED_PRICES.values())
