"""TCP addresses in Toxiproxy's ``host:port`` form: parsing, resolving, formatting and binding listeners."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from dataclasses import dataclass

from harness.faults.models import ApiError

LISTEN_BACKLOG = 1024


@dataclass(frozen=True)
class HostPort:
    """A parsed ``host:port``; an empty host means every interface, as in Go's ``net.Listen``."""

    host: str
    port: int

    def __str__(self) -> str:
        return format_host_port(self.host, self.port)


def format_host_port(host: str, port: int) -> str:
    """Join host and port the way Go prints a TCP address: IPv6 hosts in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_host_port(value: str, field: str) -> HostPort:
    """Split ``host:port``, ``[v6]:port`` or ``:port``; anything else is a 400 naming ``field``."""
    host, separator, port_text = value.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    if not (separator and port_text.isdigit() and (bracketed or ":" not in host)):
        raise ApiError(400, f"{field} must be host:port, got {value!r}; for example 127.0.0.1:0")
    port = int(port_text)
    if port > 65535:
        raise ApiError(400, f"{field} port must be 0 to 65535, got {port} in {value!r}")
    return HostPort(host, port)


async def resolve_listen(address: HostPort) -> tuple[socket.AddressFamily, str]:
    """Return the family and IP to bind for ``address``, preferring IPv4 for a name, as Go does."""
    if address.host == "":
        return (socket.AF_INET6, "::") if socket.has_ipv6 else (socket.AF_INET, "0.0.0.0")
    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(address.host)
        return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), str(ip)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ApiError(400, f"cannot resolve listen host {address.host!r}: {exc.strerror}") from exc
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, _, _, _, sockaddr = infos[0]
    return socket.AddressFamily(family), str(sockaddr[0])


async def normalize_listen(value: str) -> str:
    """Return ``value`` with its host resolved to an IP, for comparing a requested address to a bound one."""
    address = parse_host_port(value, "listen")
    _, ip = await resolve_listen(address)
    return format_host_port(ip, address.port)


async def bind_listener(value: str) -> socket.socket:
    """Bind and listen on ``value``; a failure is a 500 that names the address, as in Toxiproxy."""
    address = parse_host_port(value, "listen")
    family, ip = await resolve_listen(address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and ip == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((ip, address.port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        message = f"cannot listen on {value}: {reason}; choose another port, or port 0 for a free one"
        raise ApiError(500, message) from exc
    sock.setblocking(False)
    return sock


def bound_address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return format_host_port(host, port)
