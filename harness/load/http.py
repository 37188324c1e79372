"""A lean HTTP/1.1 client for the load engine: keep-alive connections as asyncio protocols.

The engine sends pre-serialized requests and needs, per response, the status, a few headers
and each body piece with the moment it arrived. Doing only that on uvloop with the httptools
parser costs a fraction of a general client's time per request, so the generator is not the
bottleneck (see docs/benchmarks.md). Bytes are stamped in ``data_received``, before parsing.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Protocol, cast
from urllib.parse import urlsplit

import httptools

KEPT_HEADERS = frozenset(
    {
        b"x-cache",
        b"x-upstream",
        b"retry-after",
        b"x-ratelimit-limit-requests",
        b"x-ratelimit-remaining-requests",
        b"x-ratelimit-reset-requests",
        b"x-ratelimit-limit-tokens",
        b"x-ratelimit-remaining-tokens",
        b"x-ratelimit-reset-tokens",
    }
)
"""Response headers kept for records; others are skipped."""


class ConnectError(Exception):
    """The connection could not be opened."""


class ConnectionClosed(Exception):
    """The server closed the connection before the response was complete."""

    def __init__(self, message: str, got_response: bool) -> None:
        super().__init__(message)
        self.got_response = got_response


class ProtocolViolation(Exception):
    """The server sent bytes that are not valid HTTP/1.1."""


class ResponseHandler(Protocol):
    """Receives one response as it arrives; times are ``time.monotonic()`` seconds."""

    def on_headers(self, status: int, headers: Mapping[bytes, bytes], arrived: float) -> None: ...

    def on_body(self, data: bytes, arrived: float) -> bool:
        """Take a body piece; return False when the response is complete for the handler.

        The rest of the message is then skipped; the connection is kept only when the
        message ended within the same read.
        """
        ...


class _Exchange:
    __slots__ = ("arrived", "error", "future", "got_headers", "handler", "headers", "stopped")

    def __init__(self, handler: ResponseHandler, future: asyncio.Future[float]) -> None:
        self.handler = handler
        self.future = future
        self.headers: dict[bytes, bytes] = {}
        self.arrived = 0.0
        self.error: Exception | None = None
        self.got_headers = False
        self.stopped = False


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: _Exchange | None = None
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        arrived = time.monotonic()
        exchange = self.exchange
        if exchange is None or exchange.future.done():
            self.reusable = False  # bytes nobody asked for: the connection is out of step
            return
        exchange.arrived = arrived
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._finish(exc=exchange.error or ProtocolViolation(f"invalid HTTP response: {exc}"))
            return
        if exchange.stopped and not exchange.future.done():
            # The handler has what it needs but the message has not ended: the rest is not read.
            self.reusable = False
            self._finish(exc=exchange.error)

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name in KEPT_HEADERS and self.exchange is not None:
            self.exchange.headers[name] = value

    def on_headers_complete(self) -> None:
        exchange = self.exchange
        assert exchange is not None
        exchange.got_headers = True
        status = self.parser.get_status_code()
        self.reusable = self.parser.should_keep_alive()
        exchange.handler.on_headers(status, exchange.headers, exchange.arrived)

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange is None or exchange.stopped:
            return
        try:
            exchange.stopped = not exchange.handler.on_body(body, exchange.arrived)
        except Exception as exc:  # a body the handler cannot read ends the exchange with its error
            exchange.stopped = True
            exchange.error = exc

    def on_message_complete(self) -> None:
        if self.exchange is not None:
            self._finish(exc=self.exchange.error)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        exchange = self.exchange
        if exchange is not None and not exchange.future.done():
            if exchange.stopped:
                self._finish(exc=exchange.error)
                return
            reason = f"{exc}" if exc else "the server closed the connection"
            self._finish(exc=ConnectionClosed(reason, exchange.got_headers))

    def _finish(self, exc: BaseException | None = None) -> None:
        exchange = self.exchange
        if exchange is None or exchange.future.done():
            return
        if exc is not None:
            self.reusable = False
            exchange.future.set_exception(exc)
        else:
            exchange.future.set_result(exchange.arrived)

    def start(self, handler: ResponseHandler, request: bytes, future: asyncio.Future[float]) -> None:
        assert self.transport is not None
        self.exchange = _Exchange(handler, future)
        self.transport.write(request)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class HostPool:
    """Idle keep-alive connections to one origin (scheme, host, port); opens more on demand."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"invalid base URL {base_url!r}: use http://HOST[:PORT] or https://HOST[:PORT]")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.host_header = parts.netloc.rsplit("@", 1)[-1]
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.idle: list[Connection] = []

    def build_request(self, path: str, headers: Mapping[str, str], body: bytes) -> bytes:
        """Serialize a POST once; the engine sends the same bytes for every request of a kind."""
        lines = [f"POST {self.base_path}{path} HTTP/1.1", f"host: {self.host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"content-length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def _connection(self) -> Connection:
        while self.idle:
            connection = self.idle.pop()
            if connection.reusable and connection.transport and not connection.transport.is_closing():
                return connection
        loop = asyncio.get_running_loop()
        try:
            hostname = self.host if self.ssl else None
            _, protocol = await loop.create_connection(
                Connection, self.host, self.port, ssl=self.ssl, server_hostname=hostname
            )
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return protocol

    async def exchange(self, request: bytes, handler: ResponseHandler, deadline: float) -> float:
        """Send ``request`` and feed the response to ``handler``; return when its last byte arrived.

        ``deadline`` is on the monotonic clock; past it the connection is aborted and
        TimeoutError raised, as for a connection that takes too long to open.
        """
        loop = asyncio.get_running_loop()
        async with asyncio.timeout_at(loop.time() + (deadline - time.monotonic())):
            connection = await self._connection()
            future: asyncio.Future[float] = loop.create_future()
            connection.start(handler, request, future)
            try:
                completed = await future
            except BaseException:
                connection.close()
                raise
        connection.exchange = None
        if connection.reusable:
            self.idle.append(connection)
        else:
            connection.close()
        return completed

    def close(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle.clear()


PoolFactory = Callable[[str], HostPool]
