"""Stages: a toxic acting on one direction of one connection, delaying, cutting or dropping its chunks.

A link (one direction of one connection) chains the stages of its active toxics. Each stage runs as
its own task, so a slow stage does not stall the ones before it. A stage hands items on with
``forward``, which does not wait, because the link bounds the bytes buffered in all its stages
together by pausing its reads.
"""

from __future__ import annotations

import asyncio
import math
import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict


@dataclass(slots=True)
class Chunk:
    """Bytes read from the source socket in one read, with the loop time at which they arrived."""

    data: bytes
    timestamp: float


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """The end of a direction: the source's FIN (``full_close`` False) or a toxic or error closing it."""

    full_close: bool


Item = Chunk | EndOfStream


class StageHost(Protocol):
    """Interface of the link that a stage runs in."""

    rng: random.Random

    def now(self) -> float: ...

    def release(self, nbytes: int) -> None:
        """Forget ``nbytes`` of buffered data that a stage dropped."""

    def reset_connection(self) -> None:
        """Abort both sockets of the connection with a TCP RST."""


class ToxicAttributes(BaseModel):
    """Attributes of a toxic type: integers, as in Toxiproxy's Go structs; unknown names are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)


@dataclass
class LinkToxicState:
    """State of one toxic on one link that outlives its stage, which an attribute update restarts."""

    bytes_transmitted: int = 0


AttributesT = TypeVar("AttributesT", bound=ToxicAttributes)


class Stage(ABC, Generic[AttributesT]):
    """One toxic acting on one direction of one connection.

    ``current`` is the item the stage is working on, minus what it already forwarded. When the
    toxic is removed or updated, the link cancels the task and passes ``leftovers()`` on, so no byte
    is lost or sent twice. Subclasses therefore change ``current`` and forward items only between
    two awaits.
    """

    type_name: ClassVar[str]
    attributes_model: ClassVar[type[ToxicAttributes]]

    def __init__(self, host: StageHost, attributes: AttributesT, state: LinkToxicState) -> None:
        self.host = host
        self.attributes = attributes
        self.state = state
        self.forward: Callable[[Item], None] = self._forward_unwired
        self.inbox: deque[Item] = deque()
        self.current: Item | None = None
        self.finished = False
        self._wakeup: asyncio.Future[None] | None = None

    @abstractmethod
    async def run(self) -> None:
        """Process items until the end of the stream or until the stage ends the stream itself."""

    def put(self, item: Item) -> None:
        if self.finished:
            self._release(item)
            return
        self.inbox.append(item)
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def receive(self) -> Item:
        """Wait for the next item and make it the current one."""
        item = await self.receive_until(None)
        assert item is not None
        return item

    async def receive_until(self, deadline: float | None) -> Item | None:
        """Take the next item as the current one; return None if ``deadline`` (loop time) passes first."""
        while not self.inbox:
            if deadline is not None and deadline <= self.host.now():
                return None
            loop = asyncio.get_running_loop()
            self._wakeup = waiter = loop.create_future()
            timer = loop.call_at(deadline, self._wake, waiter) if deadline is not None else None
            try:
                await waiter
            finally:
                self._wakeup = None
                if timer is not None:
                    timer.cancel()
        self.current = self.inbox.popleft()
        return self.current

    def send(self, item: Item) -> None:
        if item is self.current:
            self.current = None
        self.forward(item)

    def send_part(self, part: bytes, rest: bytes, timestamp: float) -> None:
        """Forward ``part`` of the current chunk and keep ``rest`` as the current item."""
        self.current = Chunk(rest, timestamp) if rest else None
        self.forward(Chunk(part, timestamp))

    def drop(self, item: Item) -> None:
        if item is self.current:
            self.current = None
        self._release(item)

    def end_stream(self) -> None:
        """Close the direction from here: drop what is buffered and send a full close downstream."""
        self.finished = True
        if self.current is not None:
            self.drop(self.current)
        while self.inbox:
            self._release(self.inbox.popleft())
        self.forward(EndOfStream(full_close=True))

    def leftovers(self, removed: bool) -> list[Item]:
        """Return what the stage still holds, oldest first, for the next stage once this one stops.

        ``removed`` is False when the stage only restarts with new attributes.
        """
        if self.finished:
            return []
        items = [self.current] if self.current is not None else []
        items.extend(self.inbox)
        self.current = None
        self.inbox.clear()
        return items

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until ``deadline`` (loop time) or a little later, never earlier.

        NOTE: delays are rounded up to whole milliseconds, because uvloop's timers count whole
        milliseconds and round a shorter delay to zero. A slicer ``delay`` of 1 to 999 µs waits 1 ms.
        """
        delay = deadline - self.host.now()
        if delay > 0:
            await asyncio.sleep(math.ceil(delay * 1000) / 1000)

    def _release(self, item: Item) -> None:
        if isinstance(item, Chunk):
            self.host.release(len(item.data))

    def _forward_unwired(self, item: Item) -> None:
        raise RuntimeError(f"{self.type_name} stage forwarded {item!r} before its link wired it")

    @staticmethod
    def _wake(waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_result(None)
