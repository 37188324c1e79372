"""Graceful shutdown: on SIGTERM or SIGINT, stop accepting connections and drain requests in flight.

On the signal, readiness turns 503 at once and the listening socket is closed, so new
connections wait for another holder of the socket (a supervisor that passed it with ``--fd``
keeps it open, and the next process accepts them) or are refused. A request that arrives on a
connection opened before the drain is still served, with ``connection: close``: closing an
idle HTTP/1.1 connection races with a request the client may be sending on it at that moment
(RFC 9112, section 9.6), while answering it retires the connection cleanly. Requests in flight
get ``shutdown.drain_timeout_s`` to finish; then streams still running end with an SSE error
event, and the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from target_service.metrics import GatewayMetrics
from target_service.observability import log_event

EXPIRY_GRACE_S = 1.0
"""Time for streams to send their final error event after the drain time ran out."""
POLL_S = 0.05


class Lifecycle:
    """Whether the replica is draining, and the requests to interrupt when its drain time runs out."""

    def __init__(self) -> None:
        self.draining = False
        self.expired = False
        self._interrupts: dict[int, Callable[[], None]] = {}
        self._next_id = 0

    def begin_drain(self) -> None:
        """Mark the replica draining; only sets a flag, so a signal handler may call it."""
        self.draining = True

    def on_expire(self, interrupt: Callable[[], None]) -> Callable[[], None]:
        """Call ``interrupt`` if the drain time runs out; return the function that cancels that."""
        key = self._next_id
        self._next_id += 1
        self._interrupts[key] = interrupt

        def cancel() -> None:
            self._interrupts.pop(key, None)

        return cancel

    def expire(self) -> int:
        """Interrupt every registered request; return how many there were."""
        self.expired = True
        interrupts = list(self._interrupts.values())
        self._interrupts.clear()
        for interrupt in interrupts:
            interrupt()
        return len(interrupts)


class GatewayServer(uvicorn.Server):
    """uvicorn's server with the gateway's drain in place of uvicorn's shutdown."""

    def __init__(
        self, config: uvicorn.Config, lifecycle: Lifecycle, metrics: GatewayMetrics, drain_timeout_s: float
    ) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.metrics = metrics
        self.drain_timeout_s = drain_timeout_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs as a signal handler: set flags only; the drain itself runs on the event loop.
        self.lifecycle.begin_drain()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        started = time.monotonic()
        self.lifecycle.begin_drain()
        self.metrics.draining.set(1)
        connections = self.server_state.connections
        log_event("drain_started", connections=len(connections), requests=len(self.server_state.tasks))
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(connections):
            _close_after_response(connection)

        drained = await self._wait_for_connections(started + self.drain_timeout_s)
        interrupted = 0 if drained else await self._expire()
        log_event(
            "drain_finished",
            logging.INFO if drained else logging.WARNING,
            duration_s=round(time.monotonic() - started, 3),
            interrupted_requests=interrupted,
        )
        await self.lifespan.shutdown()

    async def _wait_for_connections(self, deadline: float) -> bool:
        """Wait until every connection closed; idle ones close at their keep-alive timeout.

        A second SIGINT (uvicorn's ``force_exit``) ends the wait at once.
        """
        # uvicorn keeps connections and tasks in plain sets that signal no change, so poll them.
        while self.server_state.connections and time.monotonic() < deadline:
            if self.force_exit:
                break
            await asyncio.sleep(POLL_S)
        return not self.server_state.connections

    async def _expire(self) -> int:
        interrupted = self.lifecycle.expire()
        deadline = time.monotonic() + EXPIRY_GRACE_S
        while self.server_state.tasks and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(POLL_S)
        for connection in list(self.server_state.connections):
            connection.shutdown()
        for task in list(self.server_state.tasks):
            task.cancel("the drain time ran out")
        return interrupted


def _close_after_response(connection: Any) -> None:
    """Make a busy connection close once its response is sent; an idle one stays open for now."""
    cycle = getattr(connection, "cycle", None)
    if cycle is not None and not cycle.response_complete:
        cycle.keep_alive = False
