"""A Toxiproxy proxy: a listener, the upstream it forwards to, its toxics and its live connections."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from harness.faults.addresses import bind_listener, bound_address, normalize_listen, parse_host_port
from harness.faults.connection import Connection, Endpoint
from harness.faults.models import ApiError, Direction, ProxyFields, ToxicFields, not_found
from harness.faults.toxics import Toxic, new_toxic, updated_toxic

logger = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:0"
"""Listen address of a proxy created without one; Toxiproxy would listen on every interface."""

UPSTREAM_ERROR_LOG_INTERVAL_S = 5.0


@dataclass(frozen=True)
class ProxySettings:
    """Settings shared by every proxy of one server."""

    rng: random.Random
    max_buffer_bytes: int


class Proxy:
    """One proxy; ``enabled`` is True exactly while it listens."""

    def __init__(self, name: str, listen: str, upstream: str, settings: ProxySettings) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.upstream_address = parse_host_port(upstream, "upstream")
        self.enabled = False
        self.rng = settings.rng
        self.max_buffer_bytes = settings.max_buffer_bytes
        self.toxics: dict[Direction, list[Toxic]] = {direction: [] for direction in Direction}
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None
        self._upstream_errors = 0
        self._upstream_error_logged_at = float("-inf")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": self.toxics_json(),
        }

    def toxics_json(self) -> list[dict[str, Any]]:
        """List the toxics as Toxiproxy does: the upstream ones first, each direction in order of addition."""
        return [toxic.to_json() for direction in Direction for toxic in self.toxics[direction]]

    # Listening.

    async def start(self) -> None:
        """Listen on ``listen``; a port 0 is replaced by the port the kernel chose."""
        if self.enabled:
            return
        sock = await bind_listener(self.listen)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accept, sock=sock)
        self.listen = bound_address(sock)
        self.enabled = True
        logger.info("proxy %s listening on %s, upstream %s", self.name, self.listen, self.upstream)

    def stop(self) -> None:
        """Stop listening and close every live connection."""
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        connections = list(self.connections)
        for connection in connections:
            connection.abort()
        logger.info("proxy %s stopped; closed %d connections", self.name, len(connections))

    async def differs(self, listen: str, upstream: str) -> bool:
        """Tell whether ``listen`` (resolved to an IP) or ``upstream`` differ from this proxy's."""
        return await normalize_listen(listen) != self.listen or upstream != self.upstream

    async def update(self, fields: ProxyFields) -> None:
        """Apply an update body: a new address restarts the proxy, ``enabled`` starts or stops it."""
        listen = fields.listen if fields.listen is not None else self.listen
        upstream = fields.upstream if fields.upstream is not None else self.upstream
        enabled = fields.enabled if fields.enabled is not None else self.enabled
        if await self.differs(listen, upstream):
            upstream_address = parse_host_port(upstream, "upstream")
            self.stop()
            self.listen, self.upstream, self.upstream_address = listen, upstream, upstream_address
        if enabled:
            await self.start()
        else:
            self.stop()

    def _accept(self) -> Endpoint:
        logger.debug("proxy %s: accepted a client connection", self.name)
        connection = Connection(self)
        self.connections.add(connection)
        return connection.client

    # ConnectionOwner: what connections call.

    def toxics_for(self, direction: Direction) -> list[Toxic]:
        return list(self.toxics[direction])

    def connection_closed(self, connection: Connection) -> None:
        self.connections.discard(connection)

    def upstream_failed(self, error: OSError) -> None:
        """Log a failed upstream connect at most once per interval, with the number of failures so far."""
        self._upstream_errors += 1
        now = time.monotonic()
        if now - self._upstream_error_logged_at < UPSTREAM_ERROR_LOG_INTERVAL_S:
            return
        logger.warning(
            "proxy %s: cannot connect to upstream %s (%s); closed the client connection (%d such failures)",
            self.name,
            self.upstream,
            error.strerror or error,
            self._upstream_errors,
        )
        self._upstream_error_logged_at = now

    # Toxics.

    def get_toxic(self, name: str) -> Toxic:
        for toxic in self._all_toxics():
            if toxic.name == name:
                return toxic
        raise not_found("toxic", name)

    def add_toxic(self, fields: ToxicFields) -> Toxic:
        toxic = new_toxic(fields)
        if any(existing.name == toxic.name for existing in self._all_toxics()):
            raise ApiError(
                409, f"toxic already exists: {toxic.name!r}; remove it first or choose another name"
            )
        self.toxics[toxic.stream].append(toxic)
        for connection in list(self.connections):
            connection.attach(toxic)
        logger.info("proxy %s: added %s", self.name, _describe(toxic))
        return toxic

    def update_toxic(self, name: str, fields: ToxicFields) -> Toxic:
        old = self.get_toxic(name)
        toxic = updated_toxic(old, fields)
        chain = self.toxics[toxic.stream]
        chain[chain.index(old)] = toxic
        for connection in list(self.connections):
            connection.refresh(toxic)
        logger.info("proxy %s: updated %s", self.name, _describe(toxic))
        return toxic

    def remove_toxic(self, name: str) -> None:
        toxic = self.get_toxic(name)
        self.toxics[toxic.stream].remove(toxic)
        for connection in list(self.connections):
            connection.detach(toxic)
        logger.info("proxy %s: removed toxic %s", self.name, name)

    def remove_all_toxics(self) -> None:
        for toxic in list(self._all_toxics()):
            self.remove_toxic(toxic.name)

    def _all_toxics(self) -> list[Toxic]:
        return [toxic for direction in Direction for toxic in self.toxics[direction]]


def _describe(toxic: Toxic) -> str:
    attributes = ", ".join(f"{key}={value}" for key, value in toxic.attributes.model_dump().items())
    return f"{toxic.type} toxic {toxic.name} ({toxic.stream}, toxicity {toxic.toxicity:g}, {attributes})"
