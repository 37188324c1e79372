"""The local backend: redis-server, mock upstream LLMs and gateway replicas as processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import yaml

from harness.scenario.stack import StackSpec, UpstreamSpec
from harness.stack.base import Endpoints
from harness.stack.errors import StackError
from harness.stack.process import ManagedProcess, bind_loopback_socket, http_probe, wait_until_ready
from harness.stack.redis_server import start_redis
from target_service.config import hash_api_key

DEFAULT_READY_TIMEOUT_S = 30.0
MOCK_MODEL_NAME = "mock-llm"
"""The model name every mock upstream serves; the gateway maps each alias onto it."""


def mock_llm_argv(fd: int, spec: UpstreamSpec) -> list[str]:
    return [
        sys.executable, "-m", "target_service.mock_llm.cli",
        "--fd", str(fd),
        "--seed", str(spec.seed),
        "--ttft-ms", f"{spec.ttft_ms:g}",
        "--tokens-per-s", f"{spec.tokens_per_s:g}",
        "--output-tokens", str(spec.output_tokens),
        "--chunk-tokens", str(spec.chunk_tokens),
        "--error-rate", f"{spec.error_rate:g}",
        "--model", MOCK_MODEL_NAME,
    ]  # fmt: skip


def gateway_argv(fd: int, config_path: Path) -> list[str]:
    return [sys.executable, "-m", "target_service.cli", "--config", str(config_path), "--fd", str(fd)]


def service_environment() -> dict[str, str]:
    """Return the harness's environment without gateway overrides for the services it starts.

    A developer's SLOGATE_GATEWAY_* variables would otherwise reconfigure the stack's gateways
    (their upstreams, even) without showing up in gateway.yaml or the reports.
    """
    return {name: value for name, value in os.environ.items() if not name.startswith("SLOGATE_GATEWAY_")}


def generate_api_keys(spec: StackSpec) -> dict[str, str]:
    """Return a fresh random API key per tenant; the gateway config gets only their hashes."""
    return {tenant: f"sk-slogate-{tenant}-{secrets.token_urlsafe(18)}" for tenant in spec.tenants}


def gateway_config(
    spec: StackSpec, redis_url: str, upstream_urls: dict[str, str], api_keys: dict[str, str]
) -> dict[str, Any]:
    """Build the gateway configuration for this stack."""
    return {
        "redis": {"url": redis_url},
        "upstreams": {name: {"base_url": url} for name, url in upstream_urls.items()},
        "models": {
            alias: {"upstream": upstream, "upstream_model": MOCK_MODEL_NAME}
            for alias, upstream in spec.model_routes().items()
        },
        "tenants": {
            tenant: {
                "keys": [{"id": f"{tenant}-key", "sha256": hash_api_key(api_keys[tenant])}],
                "limits": settings.limits.model_dump(exclude_none=True),
            }
            for tenant, settings in spec.tenants.items()
        },
        "cache": {
            "enabled": spec.cache.enabled,
            "ttl_s": spec.cache.ttl,
            "max_entry_bytes": spec.cache.max_entry_bytes,
        },
        "rate_limits": {
            "window_s": spec.rate_limits.window,
            "completion_token_estimate": spec.rate_limits.completion_token_estimate,
            "on_redis_error": spec.rate_limits.on_redis_error,
        },
    }


class LocalStack:
    """Every service of the stack as a child process of the harness, each in its own process group."""

    name = "local"

    def __init__(
        self, spec: StackSpec, workdir: Path, ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S
    ) -> None:
        self.spec = spec
        self.workdir = workdir
        self.ready_timeout_s = ready_timeout_s
        self.processes: list[ManagedProcess] = []
        self.endpoints: Endpoints | None = None

    def up(self) -> Endpoints:
        if self.endpoints is not None:
            return self.endpoints
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.endpoints = self._start_all()
        except BaseException:
            self.down()
            raise
        return self.endpoints

    def _start_all(self) -> Endpoints:
        _, redis_url = start_redis(self.workdir, timeout_s=self.ready_timeout_s, on_start=self._started)

        upstream_urls = self._start_http_services(
            {name: (lambda fd, s=spec: mock_llm_argv(fd, s)) for name, spec in self.spec.upstreams.items()},
            prefix="mock-llm-",
            ready_path="/healthz",
        )
        upstream_urls = {name: f"{url}/v1" for name, url in upstream_urls.items()}

        config_path = self.workdir / "gateway.yaml"
        api_keys = generate_api_keys(self.spec)
        config = gateway_config(self.spec, redis_url, upstream_urls, api_keys)
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        gateway_urls = self._start_http_services(
            {
                str(replica): (lambda fd: gateway_argv(fd, config_path))
                for replica in range(self.spec.replicas)
            },
            prefix="gateway-",
            ready_path="/readyz",
        )
        return Endpoints(
            gateway_urls=tuple(gateway_urls.values()),
            models=tuple(self.spec.model_routes()),
            redis_url=redis_url,
            upstream_urls=upstream_urls,
            api_keys=api_keys,
        )

    def _started(self, process: ManagedProcess) -> None:
        """Track a started process at once, so an interrupt during start-up still stops it."""
        self.processes.append(process)
        self._write_process_list()

    def _write_process_list(self) -> None:
        """Record what was started, so an operator (or a test) can check that nothing outlived the stack."""
        listing = [
            {"name": p.name, "pid": p.pid, "argv": p.argv} for p in self.processes if p.pid is not None
        ]
        (self.workdir / "processes.json").write_text(json.dumps(listing, indent=2) + "\n", encoding="utf-8")

    def _start_http_services(
        self, argv_by_name: dict[str, Any], prefix: str, ready_path: str
    ) -> dict[str, str]:
        """Start one process per name on an inherited loopback socket; wait until each is ready."""
        started: dict[str, tuple[ManagedProcess, str]] = {}
        for name, make_argv in argv_by_name.items():
            sock = bind_loopback_socket()
            try:
                port = sock.getsockname()[1]
                process = ManagedProcess(
                    f"{prefix}{name}",
                    make_argv(sock.fileno()),
                    self.workdir / f"{prefix}{name}.log",
                    env=service_environment(),
                    pass_fds=(sock.fileno(),),
                )
                process.start()
                self._started(process)
            finally:
                sock.close()
            started[name] = (process, f"http://127.0.0.1:{port}")
        for process, url in started.values():
            wait_until_ready(
                process, http_probe(url + ready_path), f"{url}{ready_path}", self.ready_timeout_s
            )
        return {name: url for name, (_, url) in started.items()}

    def down(self) -> None:
        errors = []
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as exc:  # keep stopping the others; report all at the end
                errors.append(f"{process.name}: {exc}")
        self.endpoints = None
        if errors:
            raise StackError("some stack processes could not be stopped: " + "; ".join(errors))

    def is_healthy(self) -> bool:
        return self.endpoints is not None and all(process.is_running() for process in self.processes)

    def logs(self) -> dict[str, Path]:
        return {process.name: process.log_path for process in self.processes}

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes if process.pid is not None]
