"""Listening sockets for the slogate servers: bound here, or inherited from a parent process."""

from __future__ import annotations

import socket

DEFAULT_BACKLOG = 2048


class ListenError(Exception):
    """The server could not bind its listening socket."""


def listening_socket(host: str, port: int, fd: int | None) -> socket.socket:
    """Return the socket to serve on: the inherited descriptor ``fd`` if given, else a new one on host:port.

    With port 0 the kernel chooses a free port, which ``getsockname()`` returns.
    """
    if fd is not None:
        sock = socket.socket(fileno=fd)
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"file descriptor {fd} is not a stream socket")
        sock.listen(DEFAULT_BACKLOG)
        return sock
    try:
        return socket.create_server((host, port), backlog=DEFAULT_BACKLOG)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        message = f"cannot listen on {host}:{port}: {reason}; choose another --port, or 0 for a free one"
        raise ListenError(message) from exc


def socket_url(sock: socket.socket) -> str:
    """Return the http:// URL of a bound TCP socket."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
