"""The fault proxy in front of a local stack's services: which server runs it, and the toxics on it.

Each service the gateway talks to (Redis, every upstream), and optionally each gateway replica,
is reached through a proxy of a Toxiproxy-compatible server named after the fault target:
``redis``, ``upstream.<name>``, ``gateway.<n>``. The server is ``toxiproxy-server`` from PATH when
one is there (or when asked for), else slogate's embedded one.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from harness.faults.client import FaultProxyClient, FaultProxyError
from harness.scenario.faults import ToxicSpec
from harness.stack.errors import StackError
from harness.stack.process import ManagedProcess, free_loopback_port, http_probe, wait_until_ready

FaultProxyMode = Literal["auto", "embedded", "toxiproxy"]
FAULT_PROXY_MODES: tuple[FaultProxyMode, ...] = ("auto", "embedded", "toxiproxy")
TOXIPROXY_BINARY = "toxiproxy-server"


def toxiproxy_binary(mode: FaultProxyMode) -> str | None:
    """Return the toxiproxy-server to run, or None for the embedded server; raise if one is required."""
    if mode == "embedded":
        return None
    binary = shutil.which(TOXIPROXY_BINARY)
    if binary is None and mode == "toxiproxy":
        raise StackError(
            f"--fault-proxy toxiproxy needs {TOXIPROXY_BINARY} on PATH, and there is none; install it "
            "or use --fault-proxy embedded"
        )
    return binary


def start_toxiproxy_server(
    binary: str, log_dir: Path, timeout_s: float, attempts: int = 3
) -> tuple[ManagedProcess, str]:
    """Start the Go toxiproxy-server on a free loopback port; return it and its API URL.

    It binds its own port, so a port taken in between is retried on another one.
    """
    last_error: StackError | None = None
    for _ in range(attempts):
        port = free_loopback_port()
        url = f"http://127.0.0.1:{port}"
        argv = [binary, "-host", "127.0.0.1", "-port", str(port)]
        process = ManagedProcess("fault-proxy", argv, log_dir / "fault-proxy.log")
        process.start()
        try:
            wait_until_ready(process, http_probe(f"{url}/version"), f"{url}/version", timeout_s)
        except StackError as exc:
            process.stop()
            last_error = exc
            continue
        return process, url
    assert last_error is not None
    raise last_error


class FaultProxyFront:
    """Proxies in front of a stack's services, and the toxics a scenario puts on them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = FaultProxyClient(url)
        self.listen: dict[str, str] = {}
        """Listen address (host:port) of each proxy, by target name."""

    def add(self, target: str, upstream_port: int) -> int:
        """Put a proxy named ``target`` in front of 127.0.0.1:``upstream_port``; return its listen port."""
        try:
            proxy = self.client.create_proxy(
                target, upstream=f"127.0.0.1:{upstream_port}", listen="127.0.0.1:0"
            )
        except FaultProxyError as exc:
            raise StackError(f"cannot create the fault proxy for {target}: {exc}") from exc
        host, port = proxy.listen_address
        self.listen[target] = f"{host}:{port}"
        return port

    def apply(self, target: str, toxic: ToxicSpec) -> Callable[[], None]:
        """Put ``toxic`` on the target's proxy now; return the function that removes it."""
        if target not in self.listen:
            raise StackError(
                f"no fault proxy in front of {target}; network faults on gateway replicas need "
                "stack.proxy_gateways: true"
            )
        if toxic.type == "down":
            self.client.set_enabled(target, False)
            return lambda: self._enable(target)
        name = f"slogate-{toxic.type}-{uuid.uuid4().hex[:8]}"
        self.client.add_toxic(
            target, toxic.type, stream=toxic.stream, toxicity=toxic.toxicity, name=name, **toxic.attributes()
        )
        return lambda: self.client.remove_toxic(target, name)

    def _enable(self, target: str) -> None:
        self.client.set_enabled(target, True)

    def reset(self) -> None:
        """Enable every proxy and remove every toxic, so a scenario never inherits another's faults."""
        try:
            self.client.reset()
        except FaultProxyError as exc:
            raise StackError(f"cannot reset the fault proxy at {self.url}: {exc}") from exc
