"""The local backend: redis-server, mock upstream LLMs and gateway replicas as processes on 127.0.0.1."""

from __future__ import annotations

import json
import math
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from harness.faults.launcher import fault_proxy_argv
from harness.scenario.faults import ToxicSpec
from harness.scenario.stack import StackSpec, UpstreamSpec
from harness.stack.base import Endpoints
from harness.stack.errors import StackError
from harness.stack.fault_proxy import (
    FaultProxyFront,
    FaultProxyMode,
    start_toxiproxy_server,
    toxiproxy_binary,
)
from harness.stack.process import ManagedProcess, bind_loopback_socket, http_probe, wait_until_ready
from harness.stack.redis_server import flush_redis, start_redis
from target_service.config import hash_api_key

DEFAULT_READY_TIMEOUT_S = 30.0
MOCK_MODEL_NAME = "mock-llm"
"""The model name every mock upstream serves; the gateway maps each alias onto it."""


def mock_llm_argv(fd: int, *, spec: UpstreamSpec) -> list[str]:
    return [sys.executable, "-m", "target_service.mock_llm.cli", "--fd", str(fd), *mock_llm_options(spec)]


def mock_llm_options(spec: UpstreamSpec) -> list[str]:
    """Return the slogate-mock-llm options that give an upstream the behaviour ``spec`` sets."""
    return [
        "--seed", str(spec.seed),
        "--ttft-ms", f"{spec.ttft_ms:g}",
        "--tokens-per-s", f"{spec.tokens_per_s:g}",
        "--output-tokens", str(spec.output_tokens),
        "--chunk-tokens", str(spec.chunk_tokens),
        "--error-rate", f"{spec.error_rate:g}",
        "--wrong-answer-rate", f"{spec.wrong_answer_rate:g}",
        "--error-status", str(spec.error_status),
        "--model", MOCK_MODEL_NAME,
        "--startup-delay-ms", f"{spec.startup_delay * 1000:g}",
    ]  # fmt: skip


def gateway_argv(fd: int, *, config_path: Path) -> list[str]:
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
    fallbacks = spec.model_fallbacks()
    return {
        "redis": {"url": redis_url},
        "upstreams": {
            name: {"base_url": url, **spec.upstreams[name].gateway_settings()}
            for name, url in upstream_urls.items()
        },
        "models": {
            alias: {
                "upstream": upstream,
                "upstream_model": MOCK_MODEL_NAME,
                "fallbacks": [
                    entry if isinstance(entry, str) else entry.model_dump()
                    for entry in fallbacks.get(alias, [])
                ],
            }
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
        "load_shedding": {
            "max_in_flight": spec.load_shedding.max_in_flight,
            "max_in_flight_per_tenant": spec.load_shedding.max_in_flight_per_tenant,
            "retry_after_s": max(1, math.ceil(spec.load_shedding.retry_after)),
        },
        "shutdown": {"drain_timeout_s": spec.shutdown.drain_timeout},
    }


@dataclass
class _Service:
    """A stack service and how to start it again on the same port."""

    name: str
    port: int
    process: ManagedProcess
    make_argv: Callable[[int], list[str]] | None = None
    """Command line for an inherited socket; None for redis-server, which binds its own port."""
    ready_path: str = "/healthz"
    listener: socket.socket | None = None
    """A gateway's listening socket, which the stack keeps open so that connections made while the
    gateway restarts wait in its backlog for the next process, as under a socket-activating supervisor."""


class LocalStack:
    """Every service of the stack as a child process of the harness, each in its own process group."""

    name = "local"
    fault_actions: tuple[str, ...] = ("kill", "pause", "restart")

    def __init__(
        self,
        spec: StackSpec,
        workdir: Path,
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
        fault_proxy: FaultProxyMode = "auto",
    ) -> None:
        self.spec = spec
        self.workdir = workdir
        self.ready_timeout_s = ready_timeout_s
        self.fault_proxy = fault_proxy
        self.front: FaultProxyFront | None = None
        self.processes: list[ManagedProcess] = []
        """Every process this stack ever started, restarts included."""
        self.services: dict[str, _Service] = {}
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
        redis_process, redis_url = start_redis(
            self.workdir, timeout_s=self.ready_timeout_s, on_start=self._started
        )
        self.services["redis"] = _Service("redis", _port_of(redis_url), redis_process)
        front = self._start_fault_proxy()
        proxied_redis_url = f"redis://127.0.0.1:{front.add('redis', _port_of(redis_url))}/0"

        mock_urls = self._start_http_services(
            {name: partial(mock_llm_argv, spec=spec) for name, spec in self.spec.upstreams.items()},
            prefix="mock-llm-",
            ready_path="/healthz",
        )
        upstream_urls = {
            name: f"http://127.0.0.1:{front.add(f'upstream.{name}', _port_of(url))}/v1"
            for name, url in mock_urls.items()
        }

        config_path = self.workdir / "gateway.yaml"
        api_keys = generate_api_keys(self.spec)
        config = gateway_config(self.spec, proxied_redis_url, upstream_urls, api_keys)
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        gateway_urls = self._start_http_services(
            {
                str(replica): partial(gateway_argv, config_path=config_path)
                for replica in range(self.spec.replicas)
            },
            prefix="gateway-",
            ready_path="/readyz",
        )
        if self.spec.proxy_gateways:
            gateway_urls = {
                replica: f"http://127.0.0.1:{front.add(f'gateway.{replica}', _port_of(url))}"
                for replica, url in gateway_urls.items()
            }
        return Endpoints(
            gateway_urls=tuple(gateway_urls.values()),
            models=tuple(self.spec.model_routes()),
            redis_url=redis_url,
            upstream_urls=upstream_urls,
            api_keys=api_keys,
            fault_proxy_url=front.url,
            proxies=dict(front.listen),
        )

    def _start_fault_proxy(self) -> FaultProxyFront:
        binary = toxiproxy_binary(self.fault_proxy)
        if binary is not None:
            process, url = start_toxiproxy_server(binary, self.workdir, self.ready_timeout_s)
            self._started(process)
            self.services["fault-proxy"] = _Service("fault-proxy", _port_of(url), process)
        else:
            service = self._launch("fault-proxy", fault_proxy_argv, "/version", port=0)
            self.services["fault-proxy"] = service
            self._wait_ready(service)
            url = f"http://127.0.0.1:{service.port}"
        self.front = FaultProxyFront(url)
        return self.front

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
        self, argv_by_name: dict[str, Callable[[int], list[str]]], prefix: str, ready_path: str
    ) -> dict[str, str]:
        """Start one process per name on an inherited loopback socket; wait until each is ready."""
        started: list[_Service] = []
        for name, make_argv in argv_by_name.items():
            keep = bind_loopback_socket(0) if prefix == "gateway-" else None
            service = self._launch(f"{prefix}{name}", make_argv, ready_path, port=0, listener=keep)
            self.services[service.name] = service
            started.append(service)
        for service in started:
            self._wait_ready(service)
        return {
            name: f"http://127.0.0.1:{service.port}"
            for name, service in zip(argv_by_name, started, strict=True)
        }

    def _launch(
        self,
        name: str,
        make_argv: Callable[[int], list[str]],
        ready_path: str,
        port: int,
        listener: socket.socket | None = None,
    ) -> _Service:
        sock = listener or bind_loopback_socket(port)
        try:
            process = ManagedProcess(
                name,
                make_argv(sock.fileno()),
                self.workdir / f"{name}.log",
                env=service_environment(),
                pass_fds=(sock.fileno(),),
            )
            process.start()
            self._started(process)
            return _Service(name, sock.getsockname()[1], process, make_argv, ready_path, listener)
        finally:
            if listener is None:
                sock.close()

    def _wait_ready(self, service: _Service) -> None:
        url = f"http://127.0.0.1:{service.port}{service.ready_path}"
        wait_until_ready(service.process, http_probe(url), url, self.ready_timeout_s)

    def restart(self, name: str, stop_timeout_s: float = 10.0) -> None:
        """Stop a service (SIGKILL after ``stop_timeout_s``), start it on its port, wait until ready."""
        service = self.services[name]
        service.process.stop(timeout_s=stop_timeout_s)
        if service.make_argv is None:
            service.process, _ = start_redis(
                self.workdir, timeout_s=self.ready_timeout_s, port=service.port, on_start=self._started
            )
            return
        restarted = self._launch(name, service.make_argv, service.ready_path, service.port, service.listener)
        self.services[name] = restarted
        self._wait_ready(restarted)

    def apply_fault(self, target: str, action: str) -> Callable[[], None]:
        """Kill, restart or pause the target service now; return the function that undoes it.

        A restart sends SIGTERM now; its undo waits for the exit (the drain) and starts the service again.
        """
        service = self.services[service_name(target)]
        if action == "pause":
            service.process.signal(signal.SIGSTOP)
            return lambda: service.process.signal(signal.SIGCONT)
        if action == "kill":
            service.process.kill()
            return lambda: self.restart(service.name)
        if action == "restart":
            service.process.signal(signal.SIGTERM)
            drain_s = self.spec.shutdown.drain_timeout + 5.0
            return lambda: self.restart(service.name, stop_timeout_s=drain_s)
        raise ValueError(f"unknown fault action {action!r}; use kill, pause or restart")

    def apply_toxic(self, target: str, toxic: ToxicSpec) -> Callable[[], None]:
        """Put a network toxic on the target's fault proxy now; return the function that removes it."""
        if self.front is None:
            raise StackError("the stack is not running, so it has no fault proxy")
        return self.front.apply(target, toxic)

    def reset_state(self) -> None:
        """Empty Redis and remove every toxic, so a scenario sharing this stack starts like a new one."""
        if self.front is not None:
            self.front.reset()
        if self.endpoints is not None and self.endpoints.redis_url is not None:
            flush_redis(self.endpoints.redis_url)

    def down(self) -> None:
        errors = []
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as exc:  # keep stopping the others; report all at the end
                errors.append(f"{process.name}: {exc}")
        for service in self.services.values():
            if service.listener is not None:
                service.listener.close()
        self.endpoints = None
        self.front = None
        if errors:
            raise StackError("some stack processes could not be stopped: " + "; ".join(errors))

    def is_healthy(self) -> bool:
        return self.endpoints is not None and all(s.process.is_running() for s in self.services.values())

    def logs(self) -> dict[str, Path]:
        return {service.name: service.process.log_path for service in self.services.values()}

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes if process.pid is not None]


def service_name(target: str) -> str:
    """Map a fault target (redis, gateway.0, upstream.primary) to the local stack's service name."""
    if target == "redis":
        return "redis"
    kind, _, name = target.partition(".")
    return {"gateway": f"gateway-{name}", "upstream": f"mock-llm-{name}"}[kind]


def _port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port
