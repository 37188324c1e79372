"""Prometheus metrics of one gateway app, kept in the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# From 5 ms (a cache hit or an early error) up to 5 minutes (a long generation), 1.5x to 2.5x apart.
LATENCY_BUCKETS_S = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip

UNAUTHENTICATED = "none"
"""Tenant and key id label of requests that were not authenticated (a 401, or a probe)."""

UNKNOWN_MODEL = "unknown"
"""Model label of requests whose model is missing or not configured, so clients cannot add label values."""

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


class GatewayMetrics:
    """The gateway's metrics. Each instance has its own registry, so several apps can share a process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "slogate_requests_total",
            "Chat completion requests by tenant, key id, model alias and HTTP status sent to the client.",
            ["tenant", "key_id", "model", "status"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "slogate_request_duration_seconds",
            "E2E latency of chat completion requests, from request arrival to the last byte sent.",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "slogate_ttft_seconds",
            "TTFT of streamed chat completions: from request arrival to sending the first content delta.",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.tokens = Counter(
            "slogate_tokens_total",
            "Tokens in the upstream's usage by tenant, key id, model and kind (prompt or completion).",
            ["tenant", "key_id", "model", "kind"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "slogate_upstream_errors_total",
            "Failed upstream calls by error class (connect, timeout, http_4xx, http_5xx, stream).",
            ["upstream", "error_class"],
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "slogate_redis_errors_total",
            "Redis operations on the request path that failed (error, timeout) or were skipped during "
            "the back-off after a failure (backoff), by feature (cache, ratelimit).",
            ["feature", "reason"],
            registry=self.registry,
        )
        self.cache_results = Counter(
            "slogate_cache_results_total",
            "Response cache outcomes: hit, miss, store, skip (not cacheable, too large, or Redis failed) "
            "and bypass (the request sent cache-control: no-cache).",
            ["tenant", "model", "result"],
            registry=self.registry,
        )
        self.rate_limit_rejections = Counter(
            "slogate_rate_limit_rejections_total",
            "Requests rejected with 429 (or 503 when limits fail closed) by the limit that rejected them.",
            ["tenant", "key_id", "model", "limit"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "slogate_in_flight_requests",
            "Chat completion requests being handled now.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """Return the Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
