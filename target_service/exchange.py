"""One admitted chat completion request while the gateway serves it: its limits, cache plan and record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from target_service.cache import CachePlan
from target_service.observability import RequestRecord
from target_service.ratelimit import Admission
from target_service.runtime import Gateway
from target_service.tenancy import Principal


class ClientDisconnected(Exception):
    """The client closed the connection before the response started."""


@dataclass
class Exchange:
    """One admitted request: its limits to settle and its cache entry to store when it ends."""

    gateway: Gateway
    record: RequestRecord
    principal: Principal
    alias: str
    body: dict[str, Any]
    admission: Admission
    plan: CachePlan
    finished: bool = field(default=False)

    async def finish(self, used_tokens: int | None, completion: dict[str, Any] | None = None) -> None:
        """Settle the token reservation, free the concurrency slot and store a complete response, once."""
        if self.finished:
            return
        self.finished = True
        await self.gateway.limiter.settle(self.admission, used_tokens)
        if completion is not None and self.plan.store:
            result = await self.gateway.cache.store(self.plan, completion)
            self.gateway.cache.count(self.principal.tenant, self.alias, result)

    def used_tokens(self) -> int | None:
        """Return the tokens the upstream reported, or None when it reported no usage."""
        if self.record.prompt_tokens is None and self.record.completion_tokens is None:
            return None
        return (self.record.prompt_tokens or 0) + (self.record.completion_tokens or 0)

    @property
    def stream(self) -> bool:
        return self.record.stream

    @property
    def client_wants_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True
