"""Cache measurements from the x-cache header of each successful response."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.metrics.histogram import LatencyHistogram
from harness.metrics.records import RequestRecord


@dataclass
class CacheMeasurements:
    hits: int = 0
    misses: int = 0
    hit_e2e: LatencyHistogram = field(default_factory=LatencyHistogram)
    miss_e2e: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def looked_up(self) -> int:
        """Successful responses whose request the cache looked up (x-cache hit or miss)."""
        return self.hits + self.misses

    @property
    def hit_ratio(self) -> float | None:
        return self.hits / self.looked_up if self.looked_up else None

    def add(self, record: RequestRecord) -> None:
        """Count a successful response that the cache looked up; others, and bypasses, are ignored."""
        if not record.ok or record.e2e_latency is None:
            return
        if record.cache == "hit":
            self.hits += 1
            self.hit_e2e.record(record.e2e_latency)
        elif record.cache == "miss":
            self.misses += 1
            self.miss_e2e.record(record.e2e_latency)

    def latency_saved_s(self, percentile: float) -> float | None:
        """Return the miss latency minus the hit latency at ``percentile``, or None without both."""
        miss, hit = self.miss_e2e.percentile(percentile), self.hit_e2e.percentile(percentile)
        return None if miss is None or hit is None else miss - hit
