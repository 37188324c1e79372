"""Start the embedded fault proxy as a child process on a loopback socket and wait until its API responds."""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.faults.addresses import format_host_port
from harness.stack.errors import StackError
from harness.stack.process import ManagedProcess, bind_loopback_socket, http_probe, wait_until_ready

DEFAULT_READY_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class RunningFaultProxy:
    """A started fault proxy: the base URL of its API and its process (output in ``process.log_path``)."""

    url: str
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()


def fault_proxy_argv(fd: int, config_path: Path | None = None, seed: int | None = None) -> list[str]:
    argv = [sys.executable, "-m", "harness.faults.cli", "--fd", str(fd)]
    if config_path is not None:
        argv += ["--config", str(config_path)]
    if seed is not None:
        argv += ["--seed", str(seed)]
    return argv


def start_fault_proxy(
    log_dir: Path,
    *,
    sock: socket.socket | None = None,
    config_path: Path | None = None,
    seed: int | None = None,
    timeout_s: float = DEFAULT_READY_TIMEOUT_S,
) -> RunningFaultProxy:
    """Run ``slogate fault-proxy`` on ``sock`` (default: a new socket on 127.0.0.1 with a free port).

    The child inherits the listening socket, so the port is known before it starts and no other
    process can take it in between. Raises StackError with the log tail if ``GET /version`` does
    not return 200 within ``timeout_s``.
    """
    own_socket = sock is None
    listener = bind_loopback_socket() if sock is None else sock
    listener.set_inheritable(True)
    host, port = listener.getsockname()[:2]
    url = f"http://{format_host_port(host, port)}"
    argv = fault_proxy_argv(listener.fileno(), config_path, seed)
    process = ManagedProcess("fault-proxy", argv, log_dir / "fault-proxy.log", pass_fds=[listener.fileno()])
    try:
        process.start()
    finally:
        if own_socket:
            listener.close()  # the child has its own copy
    try:
        wait_until_ready(process, http_probe(f"{url}/version"), "GET /version", timeout_s)
    except StackError:
        process.stop()
        raise
    return RunningFaultProxy(url, process)
