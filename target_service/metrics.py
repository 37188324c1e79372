"""Prometheus metrics of one gateway app, kept in the app's own registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from target_service.resilience import BreakerState

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
        self.upstream_retries = Counter(
            "slogate_upstream_retries_total",
            "Retries of upstream calls, by upstream and the error class of the failed attempt.",
            ["upstream", "error_class"],
            registry=self.registry,
        )
        self.retry_budget_exhausted = Counter(
            "slogate_retry_budget_exhausted_total",
            "Retries not made because the upstream's retry budget was spent.",
            ["upstream"],
            registry=self.registry,
        )
        self.breaker_state = Gauge(
            "slogate_breaker_state",
            "Circuit breaker state of each upstream in this replica: 0 closed, 1 half-open, 2 open.",
            ["upstream"],
            registry=self.registry,
        )
        self.breaker_transitions = Counter(
            "slogate_breaker_transitions_total",
            "Circuit breaker transitions, by upstream and the state entered.",
            ["upstream", "state"],
            registry=self.registry,
        )
        self.breaker_rejections = Counter(
            "slogate_breaker_rejections_total",
            "Calls that an open or half-open breaker turned away from an upstream.",
            ["upstream"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "slogate_fallbacks_total",
            "Requests served by an upstream other than the first of their model's chain.",
            ["model", "upstream"],
            registry=self.registry,
        )
        self.load_shed = Counter(
            "slogate_load_shed_total",
            "Requests answered 503 because too many were in flight, by tenant and limit (global, tenant).",
            ["tenant", "scope"],
            registry=self.registry,
        )
        self.draining = Gauge(
            "slogate_draining",
            "1 while the replica drains after SIGTERM, else 0.",
            registry=self.registry,
        )

    def record_breaker_state(self, upstream: str, state: BreakerState) -> None:
        """Set the breaker-state gauge of ``upstream`` and count the transition."""
        self.breaker_state.labels(upstream=upstream).set(int(state))
        self.breaker_transitions.labels(upstream=upstream, state=state.label).inc()

    def render(self) -> bytes:
        """Return the Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
