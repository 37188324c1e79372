"""Fixtures of the fault proxy tests: the embedded server as a real subprocess, an echo upstream, proxies."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable, Iterator

import pytest

from harness.faults.client import FaultProxyClient, FaultProxyError, ProxyInfo
from harness.faults.launcher import RunningFaultProxy, start_fault_proxy
from tests.integration.faults.tcp import IO_TIMEOUT_S, EchoServer

ProxyFactory = Callable[..., ProxyInfo]
_names = itertools.count(1)


@pytest.fixture(scope="module")
def fault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFaultProxy]:
    """One embedded fault proxy process per test module, so a /reset in one module spares the others."""
    server = start_fault_proxy(tmp_path_factory.mktemp("fault-proxy"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fault_client(fault_server: RunningFaultProxy) -> FaultProxyClient:
    return FaultProxyClient(fault_server.url)


@pytest.fixture(scope="session")
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_proxy(fault_client: FaultProxyClient, echo_server: EchoServer) -> Iterator[ProxyFactory]:
    """Create proxies (to the echo server unless ``upstream`` is given) and delete them after the test."""
    created: list[str] = []

    def make(upstream: str | None = None, listen: str = "127.0.0.1:0", enabled: bool = True) -> ProxyInfo:
        name = f"proxy-{next(_names)}"
        proxy = fault_client.create_proxy(name, upstream or echo_server.address, listen, enabled)
        created.append(name)
        return proxy

    yield make
    for name in created:
        try:
            fault_client.delete_proxy(name)
        except FaultProxyError as exc:
            if exc.status != 404:  # the test deleted it itself
                raise


@pytest.fixture
def upstream_listener() -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.1 that a test accepts from itself, to watch the upstream side."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(IO_TIMEOUT_S)
    try:
        yield sock
    finally:
        sock.close()
