"""The proxies of one fault proxy server, by name: create, populate, look up, delete and reset them."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from harness.faults.addresses import parse_host_port
from harness.faults.models import ApiError, ProxyFields, bad_request_body, not_found, parse_body
from harness.faults.proxy import DEFAULT_LISTEN, Proxy, ProxySettings

logger = logging.getLogger(__name__)


class PopulateError(Exception):
    """``/populate`` stopped at an entry; the proxies created or kept before it are in ``proxies``."""

    def __init__(self, error: ApiError, proxies: list[Proxy]) -> None:
        super().__init__(error.message)
        self.error = error
        self.proxies = proxies


class ProxyCollection:
    """Every proxy of a server. Changes run one at a time, because some wait for a bind or a name lookup."""

    def __init__(self, settings: ProxySettings) -> None:
        self.settings = settings
        self.proxies: dict[str, Proxy] = {}
        self.lock = asyncio.Lock()

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise not_found("proxy", name)
        return proxy

    async def create(self, fields: ProxyFields) -> Proxy:
        """Create a proxy and, unless ``enabled`` is false, start it; 409 if the name is taken."""
        name, upstream = _required(fields, "name"), _required(fields, "upstream")
        async with self.lock:
            if name in self.proxies:
                raise ApiError(409, f"proxy already exists: {name!r}; delete it first or choose another name")
            proxy = Proxy(name, fields.listen or DEFAULT_LISTEN, upstream, self.settings)
            if fields.enabled is not False:
                await proxy.start()
            self.proxies[name] = proxy
            return proxy

    async def update(self, name: str, fields: ProxyFields) -> Proxy:
        async with self.lock:
            proxy = self.get(name)
            await proxy.update(fields)
            return proxy

    async def delete(self, name: str) -> None:
        async with self.lock:
            self.get(name).stop()
            del self.proxies[name]
            logger.info("proxy %s deleted", name)

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic; the proxies and their connections stay."""
        async with self.lock:
            for proxy in self.proxies.values():
                await proxy.start()
                proxy.remove_all_toxics()

    async def populate(self, data: Any) -> list[Proxy]:
        """Create or replace each proxy of a ``/populate`` body; raise PopulateError at the first failure.

        A proxy with the same name, listen address and upstream is kept as it is, toxics included.
        A proxy that differs in either address is stopped and replaced.
        """
        try:
            entries = _populate_entries(data)
        except ApiError as exc:
            raise PopulateError(exc, []) from exc
        done: list[Proxy] = []
        async with self.lock:
            for fields in entries:
                try:
                    done.append(await self._add_or_replace(fields))
                except ApiError as exc:
                    raise PopulateError(exc, done) from exc
        return done

    async def _add_or_replace(self, fields: ProxyFields) -> Proxy:
        name, upstream = _required(fields, "name"), _required(fields, "upstream")
        listen = fields.listen or DEFAULT_LISTEN
        existing = self.proxies.get(name)
        if existing is not None:
            if not await existing.differs(listen, upstream):
                return existing
            existing.stop()
        proxy = Proxy(name, listen, upstream, self.settings)
        if fields.enabled is not False:
            await proxy.start()
        self.proxies[name] = proxy
        return proxy

    async def close(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()


def _required(fields: ProxyFields, field: str, where: str = "") -> str:
    value = getattr(fields, field)
    if not value:
        raise ApiError(400, f"missing required field: {field}{where}")
    assert isinstance(value, str)
    return value


def _populate_entries(data: Any) -> list[ProxyFields]:
    """Validate a whole ``/populate`` body before any proxy changes, as Toxiproxy does."""
    if not isinstance(data, list):
        raise bad_request_body(f"/populate takes a JSON array of proxies, got {type(data).__name__}")
    entries = []
    for position, item in enumerate(data, start=1):
        fields = parse_body(ProxyFields, item, f"proxy {position}")
        _required(fields, "name", f" at proxy {position}")
        parse_host_port(
            _required(fields, "upstream", f" at proxy {position}"), f"upstream of proxy {position}"
        )
        if fields.listen:
            parse_host_port(fields.listen, f"listen of proxy {position}")
        entries.append(fields)
    return entries
