"""Prometheus metrics of one gateway app, kept in the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# From 5 ms (a cache hit or an early error) up to 5 minutes (a long generation), 1.5x to 2.5x apart.
LATENCY_BUCKETS_S = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip

UNKNOWN_MODEL = "unknown"
"""Model label of requests whose model is missing or not configured, so clients cannot add label values."""

METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


class GatewayMetrics:
    """The gateway's metrics. Each instance has its own registry, so several apps can share a process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "slogate_requests_total",
            "Chat completion requests by model alias and HTTP status sent to the client.",
            ["model", "status"],
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
            "Tokens reported in the upstream's usage, by kind (prompt or completion).",
            ["model", "kind"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "slogate_upstream_errors_total",
            "Failed upstream calls by error class (connect, timeout, http_4xx, http_5xx, stream).",
            ["upstream", "error_class"],
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
