"""Raw samples of each metric, taken from a run's per-request CSV, for baseline comparison.

Latencies and per-request rates are one value per request (ITL one per output token). Ratios
are 0/1 indicators of a bad occurrence. Throughput, goodput and output throughput are counts per
second of response end, without the first and the last second, which the run covers only in
part. Cost is one value per request.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from harness.cost.prices import Price
from harness.metrics.records import RequestRecord
from harness.metrics.summary import RequestObjective

LATENCY_VALUES: dict[str, Callable[[RequestRecord], float | None]] = {
    "e2e_latency": lambda record: record.e2e_latency,
    "ttft": lambda record: record.ttft,
    "tpot": lambda record: record.tpot,
    "output_tokens_per_s": lambda record: record.output_tokens_per_s,
}

BAD_INDICATORS: dict[str, tuple[Callable[[RequestRecord], bool], Callable[[RequestRecord], bool]]] = {
    "error_rate": (lambda r: r.ok or r.is_error, lambda r: r.is_error),
    "availability": (lambda r: r.ok or r.is_error, lambda r: r.is_error),
    "rate_limited": (lambda r: True, lambda r: not r.ok and not r.is_error),
    "cache_hit_ratio": (lambda r: r.ok and r.cache in ("hit", "miss"), lambda r: r.cache == "miss"),
}
"""Per ratio metric: which requests count, and which of them are bad."""

PER_SECOND_METRICS = ("throughput", "goodput", "output_throughput")
COST_METRICS = ("cost_per_1k_requests", "cost_total")


def latency_samples(records: Iterable[RequestRecord], metric: str) -> list[float]:
    """Return a per-request metric's values of the successful requests, in its base unit."""
    if metric == "send_lag":
        return [r.send_lag for r in records if r.send_lag is not None and not r.queued]
    if metric == "itl":
        return [value for r in records if r.ok for value, tokens in r.itl_samples() for _ in range(tokens)]
    value_of = LATENCY_VALUES[metric]
    return [value for r in records if r.ok and (value := value_of(r)) is not None]


def bad_indicators(records: Iterable[RequestRecord], metric: str) -> list[float]:
    """Return 1 for each bad and 0 for each good occurrence of a ratio metric."""
    counts, is_bad = BAD_INDICATORS[metric]
    return [1.0 if is_bad(r) else 0.0 for r in records if counts(r)]


def per_second_counts(
    records: Sequence[RequestRecord], metric: str, objectives: Sequence[RequestObjective]
) -> list[float]:
    """Return successes (good ones for goodput, output tokens for output throughput) per second of end."""
    counts: Counter[int] = Counter()
    ends = [r.end for r in records if r.ok and r.end is not None]
    if not ends:
        return []
    for record in records:
        if not record.ok or record.end is None:
            continue
        if metric == "goodput" and not all(objective.met_by(record) for objective in objectives):
            continue
        weight = (record.completion_tokens or 0) if metric == "output_throughput" else 1
        counts[math.floor(record.end)] += weight
    first, last = math.floor(min(ends)), math.floor(max(ends))
    return [float(counts.get(second, 0)) for second in range(first + 1, last)]


def cost_samples(
    records: Iterable[RequestRecord], prices: dict[str, Price], request_models: Sequence[str]
) -> list[float] | None:
    """Return each request's cost in US dollars (0 for a cache hit); None when a model has no price."""
    costs = []
    for record in records:
        price = prices.get(request_models[record.kind]) if record.kind < len(request_models) else None
        if price is None:
            return None
        hit = record.ok and record.cache == "hit"
        costs.append(0.0 if hit else price.cost_usd(record.prompt_tokens or 0, record.completion_tokens or 0))
    return costs
