"""The shipped price table: US dollars per million input and output tokens, by model name.

Prices change; a scenario overrides or adds entries under ``cost.prices``. Each shipped entry
names where its numbers came from and when they were read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness.scenario.gates import PriceSpec
from harness.scenario.stack import DEFAULT_MODEL_ALIAS

PRICES_READ_ON = "2026-12-04"


@dataclass(frozen=True)
class Price:
    input_usd_per_million_tokens: float
    output_usd_per_million_tokens: float
    source: str

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_usd_per_million_tokens
            + completion_tokens * self.output_usd_per_million_tokens
        ) / 1_000_000


# docs/scenarios.md names the page behind each number; reports show these short labels.
_OPENAI = f"OpenAI API pricing page as quoted by third-party summaries, read {PRICES_READ_ON}"
_ANTHROPIC = f"Anthropic pricing page, read {PRICES_READ_ON}"

SHIPPED_PRICES: dict[str, Price] = {
    # The mock has no real price; it is priced like gpt-4o-mini so that cost gates on the default
    # stack judge realistic amounts.
    DEFAULT_MODEL_ALIAS: Price(0.15, 0.60, "illustrative: the mock upstream, priced like gpt-4o-mini"),
    "gpt-4o": Price(2.50, 10.00, _OPENAI),
    "gpt-4o-mini": Price(0.15, 0.60, _OPENAI),
    "claude-sonnet-4": Price(3.00, 15.00, _ANTHROPIC),
    "claude-3-5-haiku": Price(0.80, 4.00, _ANTHROPIC),
}

SCENARIO_SOURCE = "scenario cost.prices"


def price_table(overrides: Mapping[str, PriceSpec]) -> dict[str, Price]:
    """Return the shipped prices with the scenario's entries added or replacing them."""
    table = dict(SHIPPED_PRICES)
    for model, price in overrides.items():
        table[model] = Price(
            price.input_usd_per_million_tokens, price.output_usd_per_million_tokens, SCENARIO_SOURCE
        )
    return table
