"""Start the slogate servers as real subprocesses on inherited loopback sockets, for integration tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.stack.process import ManagedProcess, bind_loopback_socket, http_probe, wait_until_ready

STARTUP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class RunningServer:
    """A started server: its base URL and its process, whose output is in ``process.log_path``."""

    url: str
    process: ManagedProcess


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return this process's environment without SLOGATE_GATEWAY_* overrides, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLOGATE_GATEWAY_")}
    env.update(extra or {})
    return env


@contextmanager
def running_server(
    name: str, module: str, args: Sequence[str], log_dir: Path, env: Mapping[str, str] | None = None
) -> Iterator[RunningServer]:
    """Run ``python -m module --fd N args`` until the context exits, once GET /healthz returns 200."""
    sock = bind_loopback_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    argv = [sys.executable, "-m", module, "--fd", str(sock.fileno()), *args]
    process = ManagedProcess(
        name, argv, log_dir / f"{name}.log", env=child_environment(env), pass_fds=[sock.fileno()]
    )
    try:
        process.start()
    finally:
        sock.close()  # the child has its own copy of the listening socket
    try:
        wait_until_ready(process, http_probe(f"{url}/healthz"), "GET /healthz", STARTUP_TIMEOUT_S)
        yield RunningServer(url, process)
    finally:
        process.stop()


@contextmanager
def running_mock(name: str, log_dir: Path, *args: str) -> Iterator[RunningServer]:
    """Run slogate-mock-llm with the given command-line flags."""
    with running_server(name, "target_service.mock_llm.cli", args, log_dir) as server:
        yield server


@contextmanager
def running_gateway(
    name: str, log_dir: Path, config: dict[str, Any], env: Mapping[str, str] | None = None
) -> Iterator[RunningServer]:
    """Write ``config`` as YAML and run slogate-gateway with it."""
    config_path = log_dir / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with running_server(name, "target_service.cli", ["--config", str(config_path)], log_dir, env) as server:
        yield server
