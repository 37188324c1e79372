"""The cost of a run's requests: per model, per request, per 1000 requests, and what the cache saved.

A request costs its usage tokens at its model's price. A cache hit costs nothing, because the
gateway answered without calling an upstream; what it would have cost counts as saved. Warm-up
requests are left out, as they are from every measurement. Failed requests cost the tokens
they reported, usually none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from harness.cost.prices import Price
from harness.metrics.records import RequestRecord


@dataclass
class ModelCost:
    model: str
    price: Price | None
    """None when the price table has no entry for the model."""
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    cost_usd: float = 0.0
    saved_usd: float = 0.0


@dataclass
class RunCost:
    models: dict[str, ModelCost] = field(default_factory=dict)
    request_models: list[str] = field(default_factory=list)
    """The model of each request kind, by position in the scenario's load.requests."""

    @property
    def requests(self) -> int:
        return sum(model.requests for model in self.models.values())

    @property
    def unpriced_models(self) -> list[str]:
        return sorted(name for name, model in self.models.items() if model.price is None)

    @property
    def total_usd(self) -> float | None:
        """None when a model without a price served requests, since any sum would be too low."""
        if self.unpriced_models:
            return None
        return sum(model.cost_usd for model in self.models.values())

    @property
    def per_request_usd(self) -> float | None:
        total = self.total_usd
        return None if total is None or not self.requests else total / self.requests

    @property
    def per_1k_requests_usd(self) -> float | None:
        per_request = self.per_request_usd
        return None if per_request is None else per_request * 1000

    @property
    def cache_hits(self) -> int:
        return sum(model.cache_hits for model in self.models.values())

    @property
    def saved_usd(self) -> float | None:
        if self.unpriced_models:
            return None
        return sum(model.saved_usd for model in self.models.values())


class CostAccumulator:
    """Adds up each finished request's cost; the model of a request comes from its kind."""

    def __init__(self, prices: Mapping[str, Price], kind_models: Sequence[str]) -> None:
        self.prices = prices
        self.kind_models = list(kind_models)
        self.cost = RunCost(request_models=self.kind_models)

    def add(self, record: RequestRecord) -> None:
        if record.warmup:
            return
        name = self.kind_models[record.kind]
        model = self.cost.models.get(name)
        if model is None:
            model = self.cost.models[name] = ModelCost(name, self.prices.get(name))
        prompt, completion = record.prompt_tokens or 0, record.completion_tokens or 0
        model.requests += 1
        model.prompt_tokens += prompt
        model.completion_tokens += completion
        if model.price is None:
            return
        cost = model.price.cost_usd(prompt, completion)
        if record.ok and record.cache == "hit":
            model.cache_hits += 1
            model.saved_usd += cost
        else:
            model.cost_usd += cost
