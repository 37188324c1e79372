"""Loopback TCP helpers for the fault proxy tests: an echo server in a thread and blocking client calls."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from harness.faults.client import ProxyInfo

IO_TIMEOUT_S = 5.0
READ_SIZE = 256 * 1024


class _EchoProtocol(asyncio.Protocol):
    """Write back what arrives; close after the peer's EOF; stop reading while the peer does not read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool:
        return False  # the transport closes once its write buffer is empty

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


class EchoServer:
    """A TCP echo server on 127.0.0.1 with a free port, run by an event loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="echo-server", daemon=True)
        self.server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    def start(self) -> None:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(
            self.loop.create_server(_EchoProtocol, "127.0.0.1", 0), self.loop
        )
        self.server = future.result(timeout=IO_TIMEOUT_S)

    def stop(self) -> None:
        if self.server is not None:
            self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=IO_TIMEOUT_S)
        self.loop.close()


@contextmanager
def connect(proxy: ProxyInfo, timeout_s: float = IO_TIMEOUT_S) -> Iterator[socket.socket]:
    """Open a client connection to ``proxy`` with ``timeout_s`` on every blocking call."""
    sock = socket.create_connection(proxy.listen_address, timeout=timeout_s)
    try:
        yield sock
    finally:
        sock.close()


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Read ``size`` bytes; fewer if the peer closes first."""
    parts = []
    received = 0
    while received < size:
        part = sock.recv(min(READ_SIZE, size - received))
        if not part:
            break
        parts.append(part)
        received += len(part)
    return b"".join(parts)


def recv_until_eof(sock: socket.socket, limit: int = 64 * 1024 * 1024) -> bytes:
    """Read until the peer closes; stop at ``limit`` bytes so a broken test cannot fill the memory."""
    parts = []
    received = 0
    while received < limit:
        part = sock.recv(READ_SIZE)
        if not part:
            break
        parts.append(part)
        received += len(part)
    return b"".join(parts)


def round_trip_s(sock: socket.socket, payload: bytes = b"ping") -> float:
    """Send ``payload`` to an echo and return the seconds until all of it came back."""
    started = time.perf_counter()
    sock.sendall(payload)
    echoed = recv_exactly(sock, len(payload))
    elapsed = time.perf_counter() - started
    assert echoed == payload, f"echo returned {len(echoed)} of {len(payload)} bytes"
    return elapsed


def refuses_connections(proxy: ProxyInfo) -> bool:
    try:
        with socket.create_connection(proxy.listen_address, timeout=IO_TIMEOUT_S):
            return False
    except ConnectionRefusedError:
        return True


def listener_address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"
