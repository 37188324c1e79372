"""Per-second time series of a run, for charts: throughput, latency percentiles, errors, in flight.

A request counts in the second its response ended (its intended start for ``started``).
Latency values of a second are kept only until responses are two seconds past it; then its
percentiles are computed with slogate's one method and the values dropped, so memory grows
with the run's length in seconds, not with its requests.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from harness.metrics.histogram import LatencyHistogram
from harness.metrics.records import RequestRecord

SERIES_PERCENTILES = (50.0, 95.0, 99.0)
SERIES_COLUMNS = [
    "second", "warmup", "started", "completed", "successes", "errors", "rate_limited",
    "output_tokens", "in_flight",
    *(f"e2e_p{p:g}_ms" for p in SERIES_PERCENTILES),
    *(f"ttft_p{p:g}_ms" for p in SERIES_PERCENTILES),
]  # fmt: skip
_OPEN_SECONDS = 2


@dataclass
class SecondBucket:
    started: int = 0
    completed: int = 0
    successes: int = 0
    errors: int = 0
    rate_limited: int = 0
    output_tokens: int = 0
    busy_s: float = 0.0
    """Request-seconds in flight within this second: its mean number of requests in flight."""
    e2e_ms: dict[str, float | None] = field(default_factory=dict)
    ttft_ms: dict[str, float | None] = field(default_factory=dict)


class SeriesBuilder:
    """Accumulates records into one bucket per second of the run."""

    def __init__(self, warmup_s: float = 0.0) -> None:
        self.warmup_s = warmup_s
        self.buckets: dict[int, SecondBucket] = {}
        self._values: dict[int, tuple[list[float], list[float]]] = {}
        self._closed_before = 0

    def _bucket(self, second: int) -> SecondBucket:
        bucket = self.buckets.get(second)
        if bucket is None:
            bucket = self.buckets[second] = SecondBucket()
        return bucket

    def add(self, record: RequestRecord) -> None:
        self._bucket(_second(record.intended_start)).started += 1
        ended = record.end if record.end is not None else record.intended_start
        second = _second(ended)
        bucket = self._bucket(second)
        bucket.completed += 1
        if record.ok:
            bucket.successes += 1
            bucket.output_tokens += record.completion_tokens or 0
            self._keep_values(second, record)
        elif record.is_error:
            bucket.errors += 1
        else:
            bucket.rate_limited += 1
        if record.sent is not None and record.end is not None:
            self._add_busy(record.sent, record.end)
        self._close_through(second - _OPEN_SECONDS)

    def _keep_values(self, second: int, record: RequestRecord) -> None:
        if second < self._closed_before:
            return  # a response far out of order; its counts are kept, its latency is not
        e2e, ttft = self._values.setdefault(second, ([], []))
        if record.e2e_latency is not None:
            e2e.append(record.e2e_latency)
        if record.ttft is not None:
            ttft.append(record.ttft)

    def _add_busy(self, start: float, end: float) -> None:
        for second in range(_second(start), _second(end) + 1):
            overlap = min(end, second + 1) - max(start, second)
            if overlap > 0:
                self._bucket(second).busy_s += overlap

    def _close_through(self, last: int) -> None:
        if last < self._closed_before:
            return
        for second in [s for s in self._values if s <= last]:
            self._close(second)
        self._closed_before = last + 1

    def _close(self, second: int) -> None:
        e2e, ttft = self._values.pop(second)
        bucket = self._bucket(second)
        bucket.e2e_ms = _percentiles_ms(e2e)
        bucket.ttft_ms = _percentiles_ms(ttft)

    def rows(self) -> list[dict[str, object]]:
        """Close every open second and return one row per second, from the first to the last."""
        for second in list(self._values):
            self._close(second)
        if not self.buckets:
            return []
        return [self._row(second) for second in range(min(self.buckets), max(self.buckets) + 1)]

    def _row(self, second: int) -> dict[str, object]:
        bucket = self.buckets.get(second, SecondBucket())
        row: dict[str, object] = {
            "second": second,
            "warmup": int(second < self.warmup_s),
            "started": bucket.started,
            "completed": bucket.completed,
            "successes": bucket.successes,
            "errors": bucket.errors,
            "rate_limited": bucket.rate_limited,
            "output_tokens": bucket.output_tokens,
            "in_flight": round(bucket.busy_s, 3),
        }
        for p in SERIES_PERCENTILES:
            row[f"e2e_p{p:g}_ms"] = bucket.e2e_ms.get(f"p{p:g}")
            row[f"ttft_p{p:g}_ms"] = bucket.ttft_ms.get(f"p{p:g}")
        return row


def _second(time_s: float) -> int:
    return math.floor(time_s)


def _percentiles_ms(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {}
    histogram = LatencyHistogram.of(values)
    percentiles: dict[str, float | None] = {}
    for p in SERIES_PERCENTILES:
        value = histogram.percentile(p)
        percentiles[f"p{p:g}"] = None if value is None else round(value * 1000, 3)
    return percentiles


def write_series_csv(rows: list[dict[str, object]], path: Path) -> None:
    """Write one row per second; an empty cell means no sample in that second."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SERIES_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
