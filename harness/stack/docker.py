"""The docker backend: the local backend's topology with every service in a container (testcontainers).

Redis, the fault proxy, the mock upstream LLMs and the gateway replicas run from images, with host
networking, each bound to 127.0.0.1 on a free port. The fault proxy sits in front of the services as
in the local backend, with the same target names, so the same scenarios, toxics and kill and pause
faults work. Every container is labelled with the run id and a stack id. ``down`` removes the
stack's containers by label, and an exit handler does the same when the harness exits without
calling it.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import yaml
from docker.errors import DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import WaitStrategy, WaitStrategyTarget

from harness.scenario.faults import ToxicSpec
from harness.scenario.stack import StackSpec
from harness.stack.base import Endpoints
from harness.stack.errors import StackError, UnsupportedFault
from harness.stack.fault_proxy import FaultProxyFront
from harness.stack.images import (
    DEFAULT_GATEWAY_IMAGE,
    SOURCE_DIGEST_LABEL,
    DockerImages,
    checkout_root,
    source_digest,
)
from harness.stack.local import (
    DEFAULT_READY_TIMEOUT_S,
    gateway_config,
    generate_api_keys,
    mock_llm_options,
    service_name,
)
from harness.stack.process import free_loopback_port, http_probe
from harness.stack.redis_server import flush_redis, redis_ping_probe

LABEL_MANAGED = "slogate.managed"
LABEL_RUN_ID = "slogate.run-id"
LABEL_STACK = "slogate.stack"
LABEL_SERVICE = "slogate.service"
CONFIG_IN_CONTAINER = "/etc/slogate/gateway.yaml"
START_ATTEMPTS = 3
"""Starts of one service, each on a new free port, before a port taken by another process is fatal."""
REDIS_OPTIONS = ("--save", "", "--appendonly", "no")
"""No persistence: a test stack starts empty, as with the local backend."""
LOG_TAIL_LINES = 40
POLL_INTERVAL_S = 0.1


class ProbeWaitStrategy(WaitStrategy):
    """Wait until a health probe from the host passes; fail at once when the container exits."""

    def __init__(self, probe: Callable[[], bool], description: str, timeout_s: float) -> None:
        super().__init__()
        self.probe = probe
        self.description = description
        self.with_startup_timeout(int(timeout_s) or 1)
        self.with_poll_interval(POLL_INTERVAL_S)

    def wait_until_ready(self, container: WaitStrategyTarget) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while True:
            container.reload()
            if container.status in ("exited", "dead"):
                raise StackError(f"the container exited before {self.description} was ready")
            if self.probe():
                return
            if time.monotonic() >= deadline:
                raise StackError(f"{self.description} was not ready after {self._startup_timeout:g} s")
            time.sleep(self._poll_interval)


@dataclass
class _Service:
    """A stack service: its container, the port it binds on 127.0.0.1 and how to tell it is ready."""

    name: str
    port: int
    container: DockerContainer
    wait: ProbeWaitStrategy
    log_path: Path

    @property
    def wrapped(self) -> Container:
        return self.container.get_wrapped_container()


@dataclass(frozen=True)
class _ServiceSpec:
    """How to run one service: its image, its command for a given port, and its health probe."""

    name: str
    image: str
    command: Callable[[int], list[str]]
    probe: Callable[[int], tuple[Callable[[], bool], str]]
    """Return the probe of the service on a port and what it waits for, for messages."""
    environment: Callable[[int], dict[str, str]] = lambda port: {}
    volumes: Sequence[tuple[str, str, str]] = ()


@dataclass
class _Listing:
    """The containers and proxy ports a stack started, kept in containers.json for checking the cleanup."""

    path: Path
    containers: list[dict[str, Any]] = field(default_factory=list)
    proxy_ports: list[int] = field(default_factory=list)

    def add_container(self, service: _Service, image: str) -> None:
        entry = {"name": service.name, "id": service.wrapped.id, "port": service.port, "image": image}
        self.containers.append(entry)
        self.write()

    def add_proxy_port(self, port: int) -> None:
        self.proxy_ports.append(port)
        self.write()

    def write(self) -> None:
        listing = {"containers": self.containers, "proxy_ports": self.proxy_ports}
        self.path.write_text(json.dumps(listing, indent=2) + "\n", encoding="utf-8")


class DockerStack:
    """Every service of the stack as a container in the host's network namespace."""

    name = "docker"
    # NOTE: no "restart": the local backend keeps a gateway's listening socket open across a graceful
    # restart, so connections made meanwhile wait in its backlog. A container cannot inherit that
    # socket, so they would be refused and the restart would not be graceful.
    fault_actions: tuple[str, ...] = ("kill", "pause")

    def __init__(
        self,
        spec: StackSpec,
        workdir: Path,
        *,
        run_id: str,
        images: DockerImages | None = None,
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
    ) -> None:
        self.spec = spec
        self.workdir = workdir
        self.run_id = run_id
        self.images = images or DockerImages()
        self.ready_timeout_s = ready_timeout_s
        self.stack_id = uuid.uuid4().hex[:12]
        self.labels = {LABEL_MANAGED: "true", LABEL_RUN_ID: run_id, LABEL_STACK: self.stack_id}
        self.services: dict[str, _Service] = {}
        self.front: FaultProxyFront | None = None
        self.endpoints: Endpoints | None = None
        self._client: docker.DockerClient | None = None
        self._listing = _Listing(workdir / "containers.json")

    def up(self) -> Endpoints:
        if self.endpoints is not None:
            return self.endpoints
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._client = engine_client()
        require_images(self._client, [self.images.gateway, self.images.redis])
        if self.images.gateway == DEFAULT_GATEWAY_IMAGE:
            require_current_gateway(self._client, self.images.gateway, checkout_root())
        # Ryuk, testcontainers' reaper, is an image from a registry; this backend removes its own
        # containers by label, so it never starts one.
        testcontainers_config.ryuk_disabled = True
        atexit.register(self._remove_containers)
        try:
            self.endpoints = self._start_all()
        except BaseException:
            self.down()
            raise
        return self.endpoints

    def _start_all(self) -> Endpoints:
        assert self._client is not None, "up() connects to the engine before starting containers"
        redis = self._start_ready(self._redis_spec())
        front = self._start_fault_proxy()
        redis_url = f"redis://127.0.0.1:{redis.port}/0"
        proxied_redis_url = f"redis://127.0.0.1:{self._proxy(front, 'redis', redis.port)}/0"

        mocks = self._start_group([self._mock_spec(name) for name in self.spec.upstreams])
        upstream_urls = {
            name: f"http://127.0.0.1:{self._proxy(front, f'upstream.{name}', mock.port)}/v1"
            for name, mock in zip(self.spec.upstreams, mocks, strict=True)
        }

        api_keys = generate_api_keys(self.spec)
        config_path = self.workdir / "gateway.yaml"
        config = gateway_config(self.spec, proxied_redis_url, upstream_urls, api_keys)
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        gateways = self._start_group(
            [self._gateway_spec(replica, config_path) for replica in range(self.spec.replicas)]
        )
        gateway_urls = [f"http://127.0.0.1:{gateway.port}" for gateway in gateways]
        if self.spec.proxy_gateways:
            gateway_urls = [
                f"http://127.0.0.1:{self._proxy(front, f'gateway.{replica}', gateway.port)}"
                for replica, gateway in enumerate(gateways)
            ]
        return Endpoints(
            gateway_urls=tuple(gateway_urls),
            models=tuple(self.spec.model_routes()),
            redis_url=redis_url,
            upstream_urls=upstream_urls,
            api_keys=api_keys,
            fault_proxy_url=front.url,
            proxies=dict(front.listen),
            gateway_image=self._client.images.get(self.images.gateway).id,
        )

    def _start_fault_proxy(self) -> FaultProxyFront:
        service = self._start_ready(
            _ServiceSpec(
                name="fault-proxy",
                image=self.images.gateway,
                command=lambda port: ["python3", "-m", "harness.faults.cli", *_loopback_options(port)],
                probe=_http_probe_on("/version"),
                environment=_healthcheck_environment("/version"),
            )
        )
        self.front = FaultProxyFront(f"http://127.0.0.1:{service.port}")
        return self.front

    def _proxy(self, front: FaultProxyFront, target: str, port: int) -> int:
        listen_port = front.add(target, port)
        self._listing.add_proxy_port(listen_port)
        return listen_port

    def _redis_spec(self) -> _ServiceSpec:
        def probe(port: int) -> tuple[Callable[[], bool], str]:
            url = f"redis://127.0.0.1:{port}/0"
            return redis_ping_probe(url), f"PING on {url}"

        return _ServiceSpec(
            name="redis",
            image=self.images.redis,
            command=lambda port: ["redis-server", "--bind", "127.0.0.1", "--port", str(port), *REDIS_OPTIONS],
            probe=probe,
            environment=lambda port: {"REDIS_PORT": str(port)},
        )

    def _mock_spec(self, upstream: str) -> _ServiceSpec:
        options = mock_llm_options(self.spec.upstreams[upstream])
        return _ServiceSpec(
            name=f"mock-llm-{upstream}",
            image=self.images.gateway,
            command=lambda port: ["slogate-mock-llm", *_loopback_options(port), *options],
            probe=_http_probe_on("/healthz"),
            environment=_healthcheck_environment("/healthz"),
        )

    def _gateway_spec(self, replica: int, config_path: Path) -> _ServiceSpec:
        return _ServiceSpec(
            name=f"gateway-{replica}",
            image=self.images.gateway,
            command=_gateway_command,
            probe=_http_probe_on("/readyz"),
            environment=_healthcheck_environment("/healthz"),
            volumes=[(str(config_path.resolve()), CONFIG_IN_CONTAINER, "ro")],
        )

    def _start_group(self, specs: list[_ServiceSpec]) -> list[_Service]:
        """Start every service of ``specs``, then wait for each, so their start-ups overlap."""
        services = [self._run(spec) for spec in specs]
        return [self._wait_ready(spec, service) for spec, service in zip(specs, services, strict=True)]

    def _start_ready(self, spec: _ServiceSpec) -> _Service:
        return self._wait_ready(spec, self._run(spec))

    def _run(self, spec: _ServiceSpec) -> _Service:
        """Start a container for ``spec`` on a free loopback port; it binds the port itself."""
        port = free_loopback_port()
        probe, description = spec.probe(port)
        container = DockerContainer(
            spec.image,
            env=spec.environment(port),
            name=f"slogate-{self.stack_id}-{spec.name}",
            volumes=list(spec.volumes),
        )
        # Host networking through docker's own "network" argument: testcontainers' network
        # parameter takes a user-defined network, which this backend never creates.
        container.with_command(spec.command(port)).with_kwargs(
            network="host", init=True, labels={**self.labels, LABEL_SERVICE: spec.name}
        )
        try:
            container.start()
        except DockerException as exc:
            raise StackError(f"cannot start the {spec.name} container from {spec.image}: {exc}") from exc
        wait = ProbeWaitStrategy(probe, description, self.ready_timeout_s)
        service = _Service(spec.name, port, container, wait, self.workdir / f"{spec.name}.log")
        self.services[spec.name] = service
        self._listing.add_container(service, spec.image)
        return service

    def _wait_ready(self, spec: _ServiceSpec, service: _Service) -> _Service:
        """Wait until ``service`` is ready; start it again on another port when its port was taken."""
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                service.wait.wait_until_ready(service.container)
                return service
            except StackError as exc:
                tail = self._log_tail(service)
                if "address already in use" not in tail.lower() or attempt == START_ATTEMPTS:
                    raise StackError(
                        f"{service.name} ({spec.image}): {exc}.\nLast lines of its log:\n{tail}"
                    ) from None
            self._remove(service)
            service = self._run(spec)
        raise AssertionError("unreachable")

    def restart(self, name: str) -> None:
        """Start a killed service's container again (same port) and wait until it is ready."""
        service = self.services[name]
        service.wrapped.start()
        service.wait.wait_until_ready(service.container)

    def apply_fault(self, target: str, action: str) -> Callable[[], None]:
        """Kill or pause the target's container now; return the function that undoes it."""
        if action == "restart":
            raise UnsupportedFault(
                f"the restart fault on {target} is not supported by --backend docker: a container cannot "
                "inherit a listening socket kept open across the restart, so connections made meanwhile "
                "would be refused; run this scenario with --backend local"
            )
        service = self.services[service_name(target)]
        if action == "pause":
            service.wrapped.pause()
            return service.wrapped.unpause
        if action == "kill":
            service.wrapped.kill()
            return lambda: self.restart(service.name)
        raise ValueError(f"unknown fault action {action!r}; use kill or pause")

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

    def is_healthy(self) -> bool:
        if self.endpoints is None:
            return False
        try:
            for service in self.services.values():
                service.wrapped.reload()
                if service.wrapped.status != "running":
                    return False
        except DockerException:
            return False
        return True

    def logs(self) -> dict[str, Path]:
        """Write each container's output so far to ``<workdir>/<service>.log``; return the files."""
        for service in self.services.values():
            self._save_log(service)
        return {service.name: service.log_path for service in self.services.values()}

    def ports(self) -> list[int]:
        """Return every loopback port the stack listens on: its services' and the fault proxy's."""
        return [service.port for service in self.services.values()] + self._listing.proxy_ports

    def down(self) -> None:
        """Save the containers' logs, then remove every container of this stack, found by label."""
        with contextlib.suppress(DockerException):
            self.logs()
        atexit.unregister(self._remove_containers)
        self.endpoints = None
        self.front = None
        self._remove_containers()

    def _remove_containers(self) -> None:
        if self._client is None:
            return
        problems = remove_labelled(self._client, {LABEL_STACK: self.stack_id})
        if problems:
            raise StackError("some stack containers could not be removed: " + "; ".join(problems))

    def _remove(self, service: _Service) -> None:
        self._save_log(service)
        with contextlib.suppress(NotFound):
            service.wrapped.remove(force=True)

    def _save_log(self, service: _Service) -> None:
        with contextlib.suppress(NotFound):
            service.log_path.write_bytes(service.wrapped.logs(stdout=True, stderr=True))

    def _log_tail(self, service: _Service) -> str:
        try:
            output: bytes = service.wrapped.logs(stdout=True, stderr=True, tail=LOG_TAIL_LINES)
        except DockerException as exc:
            return f"(no log: {exc})"
        return output.decode("utf-8", errors="replace")


def _gateway_command(port: int) -> list[str]:
    return ["slogate-gateway", "--config", CONFIG_IN_CONTAINER, *_loopback_options(port)]


def _loopback_options(port: int) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port)]


def _http_probe_on(path: str) -> Callable[[int], tuple[Callable[[], bool], str]]:
    def probe(port: int) -> tuple[Callable[[], bool], str]:
        url = f"http://127.0.0.1:{port}{path}"
        return http_probe(url), f"GET {url}"

    return probe


def _healthcheck_environment(path: str) -> Callable[[int], dict[str, str]]:
    """Point the image's HEALTHCHECK at the port and path this container serves."""
    return lambda port: {"SLOGATE_HEALTHCHECK_URL": f"http://127.0.0.1:{port}{path}"}


def engine_client() -> docker.DockerClient:
    """Return a client of the local Docker engine, or raise StackError saying how to start one."""
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        raise StackError(
            f"cannot reach a Docker engine ({exc}); start one with 'make docker-engine' (as root), "
            "or set DOCKER_HOST to a local engine"
        ) from exc
    host = urlsplit(client.api.base_url).hostname
    if host not in (None, "localhost", "127.0.0.1", "::1"):
        client.close()
        raise StackError(
            f"the docker backend needs a local engine, since its containers share the harness's "
            f"127.0.0.1; DOCKER_HOST points at {client.api.base_url}"
        )
    return client


def require_images(client: docker.DockerClient, images: Sequence[str]) -> None:
    """Raise StackError unless every image is present; the backend never pulls from a registry."""
    missing = []
    for image in images:
        try:
            client.images.get(image)
        except ImageNotFound:
            missing.append(image)
    if missing:
        raise StackError(
            f"image not found: {', '.join(missing)}; build the images with 'make offline-images' (no "
            "registry needed) or 'make image', or choose others with --docker-image and --docker-redis-image"
        )


def require_current_gateway(client: docker.DockerClient, image: str, root: Path | None) -> None:
    """Raise StackError when ``image`` was built from other sources than the checkout at ``root``.

    An installed package (``root`` None) has no sources to compare, so any image passes.
    """
    if root is None:
        return
    built_from = client.images.get(image).labels.get(SOURCE_DIGEST_LABEL)
    expected = source_digest(root)
    if built_from != expected:
        raise StackError(
            f"{image} was built from other sources than {root} (image label {SOURCE_DIGEST_LABEL}="
            f"{built_from or 'missing'}, checkout {expected}), so it would not test this code; rebuild "
            "it with 'make offline-images' or 'make image', or pass --docker-image to run another image on "
            "purpose"
        )


def label_filters(labels: dict[str, str]) -> dict[str, str | list[str] | bool]:
    """Return the container-list filter that matches containers carrying all of ``labels``."""
    return {"label": [f"{key}={value}" for key, value in labels.items()]}


def remove_labelled(client: docker.DockerClient, labels: dict[str, str]) -> list[str]:
    """Force-remove every container, running or not, that has all of ``labels``; return the failures."""
    filters = label_filters(labels)
    problems = []
    for container in client.containers.list(all=True, filters=filters):
        try:
            container.remove(force=True)
        except NotFound:
            continue
        except DockerException as exc:
            problems.append(f"{container.name}: {exc}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.stack.docker",
        description="Remove containers that the docker backend left behind, such as after a killed run.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    clean = commands.add_parser("clean", help="remove the docker backend's containers")
    clean.add_argument("--run-id", help="remove only this run's containers (default: every run's)")
    args = parser.parse_args(argv)
    labels = {LABEL_MANAGED: "true"} if args.run_id is None else {LABEL_RUN_ID: args.run_id}
    try:
        client = engine_client()
    except StackError as exc:
        print(f"docker clean: {exc}", file=sys.stderr)
        return 1
    filters = label_filters(labels)
    names = [container.name for container in client.containers.list(all=True, filters=filters)]
    problems = remove_labelled(client, labels)
    removed = len(names) - len(problems)
    print(
        f"docker clean: removed {removed} container(s)" + (f": {' '.join(map(str, names))}" if names else "")
    )
    for problem in problems:
        print(f"docker clean: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
