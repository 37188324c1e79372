"""The interface every stack backend implements: bring a stack up, report its endpoints, tear it down."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness.scenario.faults import ToxicSpec


@dataclass(frozen=True)
class Endpoints:
    """Addresses of a running stack, all on loopback for the managed backends."""

    gateway_urls: tuple[str, ...]
    """Base URL of each gateway replica, such as ``http://127.0.0.1:41234``."""
    models: tuple[str, ...]
    """Model aliases the gateway serves; the first is the default for scenario requests."""
    redis_url: str | None = None
    upstream_urls: Mapping[str, str] = field(default_factory=dict)
    """OpenAI-compatible base URL (ending in /v1) of each upstream, by name."""
    api_keys: Mapping[str, str] = field(default_factory=dict)
    """API key by tenant name, for gateways that require one."""
    fault_proxy_url: str | None = None
    """API of the Toxiproxy-compatible fault proxy in front of the services, when there is one."""
    proxies: Mapping[str, str] = field(default_factory=dict)
    """Fault-proxy listen address (host:port) by target name: redis, upstream.<name>, gateway.<n>."""
    gateway_image: str | None = None
    """Image id of the gateway and mock upstream containers (docker backend); None elsewhere."""

    @property
    def metrics_urls(self) -> tuple[str, ...]:
        return tuple(f"{url}/metrics" for url in self.gateway_urls)


class StackBackend(Protocol):
    name: str
    fault_actions: tuple[str, ...]
    """The process fault actions (a fault's ``action``) that ``apply_fault`` performs."""

    def up(self) -> Endpoints:
        """Start every service, wait until each is ready and return the endpoints.

        On failure everything already started is stopped before the error propagates.
        """
        ...

    def down(self) -> None:
        """Stop everything this backend started; safe to call twice or after a failed ``up``."""
        ...

    def is_healthy(self) -> bool:
        """Return True while every service this backend started is still running."""
        ...

    def logs(self) -> dict[str, Path]:
        """Return the log file of each service by service name."""
        ...

    def reset_state(self) -> None:
        """Empty the stack's shared state (Redis), so scenarios that share the stack start alike."""
        ...

    def apply_fault(self, target: str, action: str) -> Callable[[], None]:
        """Perform a process fault (one of ``fault_actions``) on ``target`` now; return its undo."""
        ...

    def apply_toxic(self, target: str, toxic: ToxicSpec) -> Callable[[], None]:
        """Put a network toxic on ``target``'s traffic now; return the function that removes it."""
        ...
