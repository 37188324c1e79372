"""Load shedding: caps on chat completions in flight in one replica, overall and per tenant.

Past a cap the request gets 503 with Retry-After before any other work, so an overloaded
replica answers fast instead of queueing. The counts are per replica and in memory; the
tenant concurrency limit in Redis (``limits.concurrency``) is the one that spans replicas.
"""

from __future__ import annotations

from collections.abc import Callable

from target_service.config import LoadSheddingConfig
from target_service.errors import ServiceUnavailableError
from target_service.metrics import UNAUTHENTICATED, GatewayMetrics

Release = Callable[[], None]


class LoadShedder:
    """Counts requests in flight and rejects those past ``max_in_flight`` or the tenant's cap."""

    def __init__(self, config: LoadSheddingConfig, metrics: GatewayMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.in_flight = 0
        self.tenant_in_flight: dict[str, int] = {}

    def admit(self) -> Release:
        """Count a request against the global cap; return its release, or raise a 503 past the cap."""
        limit = self.config.max_in_flight
        if limit is not None and self.in_flight >= limit:
            self.metrics.load_shed.labels(tenant=UNAUTHENTICATED, scope="global").inc()
            raise self._overloaded(f"{self.in_flight} requests are in flight, the limit of this replica")
        self.in_flight += 1
        return self._release_global

    def admit_tenant(self, tenant: str) -> Release:
        """Count a request against ``tenant``'s cap; return its release, or raise a 503 past the cap."""
        limit = self.config.max_in_flight_per_tenant
        count = self.tenant_in_flight.get(tenant, 0)
        if limit is not None and count >= limit:
            self.metrics.load_shed.labels(tenant=tenant, scope="tenant").inc()
            raise self._overloaded(f"tenant {tenant} has {count} requests in flight, its limit per replica")
        self.tenant_in_flight[tenant] = count + 1
        return lambda: self._release_tenant(tenant)

    def _release_global(self) -> None:
        self.in_flight -= 1

    def _release_tenant(self, tenant: str) -> None:
        remaining = self.tenant_in_flight[tenant] - 1
        if remaining:
            self.tenant_in_flight[tenant] = remaining
        else:
            del self.tenant_in_flight[tenant]

    def _overloaded(self, reason: str) -> ServiceUnavailableError:
        retry_after_s = self.config.retry_after_s
        return ServiceUnavailableError(
            f"The gateway is overloaded: {reason}. Retry after {retry_after_s} s.",
            "overloaded",
            retry_after_s,
        )
