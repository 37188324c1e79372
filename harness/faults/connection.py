"""Proxied connections: the client socket, the upstream socket, and one link per direction between them.

A link reads from one socket, passes the data through the stages of its direction's active toxics and
writes it to the other socket. Its memory is bounded: once ``max_buffer_bytes`` are read but not yet
written, it stops reading its source until half of that is written, so TCP backpressure reaches the
sender. A link without active toxics writes each chunk as it arrives and stops reading as soon as
the destination's write buffer is full.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from harness.faults.addresses import HostPort
from harness.faults.models import Direction
from harness.faults.stage import Chunk, EndOfStream, Item, LinkToxicState, Stage
from harness.faults.toxics import Toxic

logger = logging.getLogger(__name__)

LINGER_RESET = struct.pack("ii", 1, 0)
"""SO_LINGER on with a zero timeout: close() then sends a TCP RST instead of a FIN."""


class ConnectionOwner(Protocol):
    """Interface of the proxy that owns a connection."""

    name: str
    upstream_address: HostPort
    rng: random.Random
    max_buffer_bytes: int

    def toxics_for(self, direction: Direction) -> list[Toxic]: ...

    def connection_closed(self, connection: Connection) -> None: ...

    def upstream_failed(self, error: OSError) -> None: ...


class Endpoint(asyncio.Protocol):
    """One socket of a connection: the source of one link and the destination of the other."""

    def __init__(self, connection: Connection, role: str) -> None:
        self.connection = connection
        self.role = role
        self.transport: asyncio.Transport | None = None
        self.reader: Link | None = None
        self.writer: Link | None = None
        self.read_paused = False
        self.write_paused = False
        self.closing = False
        self.lost = False
        self.early: list[Item] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection.endpoint_connected(self)

    def data_received(self, data: bytes) -> None:
        if self.reader is not None:
            self.reader.feed(data)
            return
        # Data before the links exist (the upstream is still connecting) waits here, and reading
        # pauses. It cannot pause in connection_made, because uvloop starts reading after that.
        self.early.append(Chunk(data, 0.0))
        self.set_reading(False)

    def eof_received(self) -> bool:
        end = EndOfStream(full_close=False)
        if self.reader is not None:
            self.reader.feed_end(end)
        else:
            self.early.append(end)
        return True  # keep the socket open for the other direction (TCP half-close)

    def feed_early(self) -> None:
        """Pass what arrived before the links existed to the link reading this socket."""
        assert self.reader is not None
        for item in self.early:
            if isinstance(item, Chunk):
                self.reader.feed(item.data)
            else:
                self.reader.feed_end(item)
        self.early.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            logger.debug("proxy %s: %s socket failed: %s", self.connection.owner.name, self.role, exc)
        self.lost = True
        if self.reader is not None:
            self.reader.feed_end(EndOfStream(full_close=True))
        if self.writer is not None:
            self.writer.dest_lost()
        self.connection.endpoint_lost(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.writer is not None:
            self.writer.dest_resumed()

    @property
    def writable(self) -> bool:
        return self.transport is not None and not self.closing and not self.lost

    def set_reading(self, reading: bool) -> None:
        if self.transport is None or self.closing or reading == (not self.read_paused):
            return
        if reading:
            self.transport.resume_reading()
        else:
            self.transport.pause_reading()
        self.read_paused = not reading

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def write_eof(self) -> None:
        if self.writable and self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()

    def close(self) -> None:
        """Close after writing what is buffered; the link reading from this socket ends at once."""
        if self.transport is None or self.closing:
            return
        self.closing = True
        self.transport.close()
        if self.reader is not None:
            self.reader.feed_end(EndOfStream(full_close=True))

    def abort(self, reset: bool) -> None:
        """Close now, dropping buffered data; with ``reset`` the peer gets a TCP RST."""
        if self.transport is None or self.lost:
            return
        if reset:
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        self.closing = True
        self.transport.abort()


@dataclass
class LinkToxic:
    """A toxic as one link runs it: whether its toxicity roll made it act, and its running stage."""

    toxic: Toxic
    active: bool
    state: LinkToxicState = field(default_factory=LinkToxicState)
    stage: Stage[Any] | None = None
    task: asyncio.Task[None] | None = None


class Link:
    """One direction of a connection: reads ``source``, runs the toxic stages, writes ``dest``."""

    def __init__(
        self, connection: Connection, direction: Direction, source: Endpoint, dest: Endpoint
    ) -> None:
        self.connection = connection
        self.direction = direction
        self.source = source
        self.dest = dest
        self.rng = connection.owner.rng
        self.max_buffer_bytes = connection.owner.max_buffer_bytes
        self.loop = asyncio.get_running_loop()
        self.entries: list[LinkToxic] = []
        self.entry: Callable[[Item], None] = self.deliver
        self.backlog: deque[Item] = deque()
        self.buffered_bytes = 0
        self.source_ended = False
        self.done = False
        source.reader = self
        dest.writer = self

    # StageHost: what the stages call.

    def now(self) -> float:
        return self.loop.time()

    def release(self, nbytes: int) -> None:
        self.buffered_bytes -= nbytes
        self.update_reading()

    def reset_connection(self) -> None:
        self.connection.reset()

    # The source side.

    def feed(self, data: bytes) -> None:
        if self.done or self.source_ended:
            return
        self.buffered_bytes += len(data)
        self.entry(Chunk(data, self.loop.time()))
        self.update_reading()

    def feed_end(self, end: EndOfStream) -> None:
        if self.source_ended:
            return
        self.source_ended = True
        self.entry(end)

    def update_reading(self) -> None:
        """Pause or resume reading the source, so at most ``max_buffer_bytes`` wait in this link."""
        if self.source_ended or self.done:
            return
        if not self._has_stages():
            self.source.set_reading(not self.backlog)
        elif self.buffered_bytes >= self.max_buffer_bytes:
            self.source.set_reading(False)
        elif self.buffered_bytes <= self.max_buffer_bytes // 2:
            self.source.set_reading(True)

    # The destination side.

    def deliver(self, item: Item) -> None:
        if self.done:
            self._discard(item)
        elif self.backlog or self.dest.write_paused:
            self.backlog.append(item)
            self.update_reading()
        else:
            self._write(item)

    def dest_resumed(self) -> None:
        while self.backlog and not self.dest.write_paused and not self.done:
            self._write(self.backlog.popleft())
        self.update_reading()

    def dest_lost(self) -> None:
        """Stop the link, dropping what it buffers, because its destination socket is gone."""
        if not self.done:
            self._finish()

    def _write(self, item: Item) -> None:
        if isinstance(item, EndOfStream):
            self._finish()
            if item.full_close:
                self.dest.close()
            else:
                self.dest.write_eof()
            self.connection.link_finished()
            return
        if self.dest.writable:
            self.dest.write(item.data)
        self.release(len(item.data))

    def _finish(self) -> None:
        self.done = True
        self.stop_stages()
        while self.backlog:
            self._discard(self.backlog.popleft())

    def _discard(self, item: Item) -> None:
        if isinstance(item, Chunk):
            self.buffered_bytes -= len(item.data)

    # The toxic chain.

    def attach(self, toxic: Toxic) -> None:
        """Add ``toxic`` at the end of the chain; it acts only if its toxicity roll selects it."""
        entry = LinkToxic(toxic, active=self.rng.random() < toxic.toxicity)
        self.entries.append(entry)
        if entry.active and not self.done:
            self._start_stage(entry, [])
        self._rewire()

    def attach_all(self, toxics: Iterable[Toxic]) -> None:
        for toxic in toxics:
            self.attach(toxic)

    def detach(self, name: str) -> None:
        """Stop acting with the toxic ``name``, passing on what its stage still holds."""
        for index, entry in enumerate(self.entries):
            if entry.toxic.name == name:
                del self.entries[index]
                self._stop_stage(entry, removed=True)
                return

    def refresh(self, toxic: Toxic) -> None:
        """Apply new attributes or toxicity: restart the stage, re-rolling only if the toxicity changed."""
        entry = next((entry for entry in self.entries if entry.toxic.name == toxic.name), None)
        if entry is None:
            return
        if toxic.toxicity != entry.toxic.toxicity:
            entry.active = self.rng.random() < toxic.toxicity
        entry.toxic = toxic
        leftovers = self._stop_stage(entry, removed=False, pass_on=False)
        if entry.active and not self.done:
            self._start_stage(entry, leftovers)
            self._rewire()
        else:
            self._pass_on(entry, leftovers)

    def stop_stages(self) -> None:
        for entry in self.entries:
            if entry.task is not None:
                entry.task.cancel()
                entry.task = None
            entry.stage = None
        self._rewire()

    def _start_stage(self, entry: LinkToxic, inbox: list[Item]) -> None:
        stage = entry.toxic.stage_class(self, entry.toxic.attributes, entry.state)
        stage.inbox.extend(inbox)
        entry.stage = stage
        entry.task = self.loop.create_task(stage.run(), name=f"{entry.toxic.name} {self.direction}")
        entry.task.add_done_callback(self._stage_ended)

    def _stop_stage(self, entry: LinkToxic, removed: bool, pass_on: bool = True) -> list[Item]:
        """Cancel the stage; pass its leftovers to the next stage, or return them when ``pass_on`` is False.

        The leftovers are taken before the chain is rewired, while the stage's ``forward`` still
        points at its successor (a removed timeout toxic sends its close there).
        """
        stage, task = entry.stage, entry.task
        entry.stage, entry.task = None, None
        if stage is None or task is None:
            self._rewire()
            return []
        task.cancel()
        successor = stage.forward
        leftovers = stage.leftovers(removed)
        self._rewire()
        if not pass_on:
            return leftovers
        for item in leftovers:
            successor(item)
        return []

    def _pass_on(self, entry: LinkToxic, items: list[Item]) -> None:
        self._rewire()
        index = self.entries.index(entry)
        target = next((e.stage.put for e in self.entries[index + 1 :] if e.stage is not None), self.deliver)
        for item in items:
            target(item)

    def _rewire(self) -> None:
        """Point the source at the first active stage, each stage at the next, the last at the destination."""
        target: Callable[[Item], None] = self.deliver
        for entry in reversed(self.entries):
            if entry.stage is not None:
                entry.stage.forward = target
                target = entry.stage.put
        self.entry = target
        self.update_reading()

    def _has_stages(self) -> bool:
        return any(entry.stage is not None for entry in self.entries)

    def _stage_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        logger.error(
            "proxy %s: %s stage failed; closing the connection",
            self.connection.owner.name,
            task.get_name(),
            exc_info=task.exception(),
        )
        self.connection.abort()


class Connection:
    """A client connection accepted by a proxy, and the connection the proxy opened to the upstream."""

    def __init__(self, owner: ConnectionOwner) -> None:
        self.owner = owner
        self.client = Endpoint(self, "client")
        self.upstream: Endpoint | None = None
        self.links: dict[Direction, Link] = {}
        self._dial: asyncio.Task[None] | None = None
        self._closed = False

    def endpoint_connected(self, endpoint: Endpoint) -> None:
        if endpoint is self.client:
            self._dial = asyncio.get_running_loop().create_task(self._connect_upstream())

    async def _connect_upstream(self) -> None:
        address = self.owner.upstream_address
        loop = asyncio.get_running_loop()
        try:
            _, endpoint = await loop.create_connection(
                lambda: Endpoint(self, "upstream"), address.host, address.port
            )
        except OSError as exc:
            self.owner.upstream_failed(exc)
            self.client.close()
            return
        self.upstream = endpoint
        if self.client.lost or self.client.closing:
            endpoint.close()
            return
        self._open_links(endpoint)

    def _open_links(self, upstream: Endpoint) -> None:
        self.links = {
            Direction.UPSTREAM: Link(self, Direction.UPSTREAM, self.client, upstream),
            Direction.DOWNSTREAM: Link(self, Direction.DOWNSTREAM, upstream, self.client),
        }
        for direction, link in self.links.items():
            link.attach_all(self.owner.toxics_for(direction))
            link.source.feed_early()
            link.update_reading()

    def link_finished(self) -> None:
        if self.links and all(link.done for link in self.links.values()):
            for endpoint in self._endpoints():
                endpoint.close()

    def endpoint_lost(self, endpoint: Endpoint) -> None:
        if endpoint is self.client and self._dial is not None:
            self._dial.cancel()
        if all(endpoint.lost for endpoint in self._endpoints()) and not self._closed:
            self._closed = True
            for link in self.links.values():
                link.stop_stages()
            self.owner.connection_closed(self)

    def abort(self) -> None:
        """Close both sockets at once, dropping buffered data, as a disabled or deleted proxy does."""
        self._close_now(reset=False)

    def reset(self) -> None:
        """Close both sockets with a TCP RST, for the reset_peer toxic."""
        self._close_now(reset=True)

    def _close_now(self, reset: bool) -> None:
        if self._dial is not None:
            self._dial.cancel()
        for link in self.links.values():
            link.done = True
            link.stop_stages()
        for endpoint in self._endpoints():
            endpoint.abort(reset)

    def _endpoints(self) -> list[Endpoint]:
        return [self.client] if self.upstream is None else [self.client, self.upstream]

    # Toxics added, changed or removed while the connection is open.

    def attach(self, toxic: Toxic) -> None:
        link = self.links.get(toxic.stream)
        if link is not None:
            link.attach(toxic)

    def detach(self, toxic: Toxic) -> None:
        link = self.links.get(toxic.stream)
        if link is not None:
            link.detach(toxic.name)

    def refresh(self, toxic: Toxic) -> None:
        link = self.links.get(toxic.stream)
        if link is not None:
            link.refresh(toxic)
