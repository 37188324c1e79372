"""``slogate fault-proxy`` as a user runs it, and its launcher: real processes and exit codes."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from harness.faults.client import FaultProxyClient
from harness.faults.launcher import start_fault_proxy
from harness.stack.errors import StackError
from harness.stack.process import ManagedProcess, bind_loopback_socket, http_probe, wait_until_ready
from tests.conftest import pid_alive
from tests.integration.faults.tcp import EchoServer, listener_address

SLOGATE = [sys.executable, "-m", "harness.cli"]
DOCS = Path(__file__).resolve().parents[3] / "docs" / "faults.md"
JSON_BLOCK = re.compile(r"^```json\n(.*?)^```", re.MULTILINE | re.DOTALL)


def write_config(path: Path, echo_server: EchoServer) -> Path:
    proxies = [
        {"name": "echo_a", "listen": "127.0.0.1:0", "upstream": echo_server.address},
        {"name": "echo_b", "listen": "127.0.0.1:0", "upstream": echo_server.address, "enabled": False},
    ]
    path.write_text(json.dumps(proxies), encoding="utf-8")
    return path


def wait_for_exit(process: ManagedProcess, timeout_s: float) -> int | None:
    deadline = time.monotonic() + timeout_s
    while process.exit_code() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return process.exit_code()


def test_fault_proxy_cli_populates_config(tmp_path: Path, echo_server: EchoServer) -> None:
    config = write_config(tmp_path / "toxiproxy.json", echo_server)
    sock = bind_loopback_socket()
    url = f"http://{listener_address(sock)}"
    argv = [*SLOGATE, "fault-proxy", "--fd", str(sock.fileno()), "--config", str(config)]
    process = ManagedProcess("fault-proxy", argv, tmp_path / "fault-proxy.log", pass_fds=[sock.fileno()])
    try:
        process.start()
        sock.close()
        wait_until_ready(process, http_probe(f"{url}/version"), "GET /version", timeout_s=15)
        proxies = httpx.get(f"{url}/proxies", timeout=5).json()
        assert set(proxies) == {"echo_a", "echo_b"}
        assert proxies["echo_a"]["enabled"] is True
        assert proxies["echo_b"]["enabled"] is False
        process.signal(signal.SIGTERM)
        assert wait_for_exit(process, timeout_s=5) == 0
    finally:
        process.stop()


def test_fault_proxy_cli_missing_config_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [*SLOGATE, "fault-proxy", "--port", "0", "--config", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "cannot read --config" in result.stderr
    assert "missing.json" in result.stderr


def test_fault_proxy_cli_invalid_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "toxiproxy.json"
    config.write_text('[{"name": "redis"}]', encoding="utf-8")
    result = subprocess.run(
        [*SLOGATE, "fault-proxy", "--port", "0", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "missing required field: upstream at proxy 1" in result.stderr


def test_fault_proxy_cli_port_in_use_exits_2() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        result = subprocess.run(
            [*SLOGATE, "fault-proxy", "--port", port], capture_output=True, text=True, timeout=30
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_start_fault_proxy_stops_cleanly(tmp_path: Path) -> None:
    server = start_fault_proxy(tmp_path)
    assert httpx.get(f"{server.url}/version", timeout=5).status_code == 200
    server.stop()
    assert server.process.pid is not None
    assert not pid_alive(server.process.pid)


def test_start_fault_proxy_reports_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "toxiproxy.json"
    config.write_text("{not json", encoding="utf-8")
    with pytest.raises(StackError, match="is not valid JSON"):
        start_fault_proxy(tmp_path, config_path=config)


def test_docs_config_example_populates(tmp_path: Path) -> None:
    (example,) = JSON_BLOCK.findall(DOCS.read_text(encoding="utf-8"))
    proxies = json.loads(example)
    for proxy in proxies:
        host = proxy["listen"].rsplit(":", 1)[0]
        proxy["listen"] = f"{host}:0"  # the example's fixed ports may be taken on this machine
    config = tmp_path / "toxiproxy.json"
    config.write_text(json.dumps(proxies), encoding="utf-8")
    server = start_fault_proxy(tmp_path, config_path=config)
    try:
        created = FaultProxyClient(server.url).proxies()
    finally:
        server.stop()
    assert set(created) == {proxy["name"] for proxy in proxies}
    assert all(info.enabled for info in created.values())
