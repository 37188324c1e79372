"""The docker backend runs the stack in containers on 127.0.0.1 and removes them all afterwards."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from docker.models.containers import Container

from harness.scenario.faults import LatencyToxic
from harness.scenario.model import StackSpec, UpstreamSpec
from harness.stack import docker as docker_backend
from harness.stack.docker import LABEL_RUN_ID, LABEL_SERVICE, LABEL_STACK, DockerStack
from harness.stack.errors import StackError
from harness.stack.images import DockerImages
from harness.stack.process import free_loopback_port
from tests.docker.conftest import SuiteRecord, listening_addresses

pytestmark = pytest.mark.docker

CHAT = {"model": "mock-llm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
SERVICES = {"redis", "fault-proxy", "mock-llm-primary", "gateway-0", "gateway-1"}


def _complete(url: str, api_key: str, timeout_s: float = 10.0) -> httpx.Response:
    headers = {"authorization": f"Bearer {api_key}"}
    return httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers, timeout=timeout_s)


def _stack_containers(client: docker.DockerClient, stack: DockerStack) -> list[Container]:
    return client.containers.list(all=True, filters={"label": f"{LABEL_STACK}={stack.stack_id}"})


@pytest.fixture(scope="module")
def running_stack(
    tmp_path_factory: pytest.TempPathFactory, docker_images: DockerImages, suite_record: SuiteRecord
) -> Iterator[DockerStack]:
    """One two-replica stack shared by the tests that only read it or undo what they change."""
    stack = DockerStack(
        StackSpec(replicas=2, proxy_gateways=True),
        tmp_path_factory.mktemp("docker-stack"),
        run_id=suite_record.run_id("stack"),
        images=docker_images,
    )
    try:
        stack.up()
        yield stack
    finally:
        suite_record.ports.update(stack.ports())
        stack.down()


def test_docker_stack_serves_through_gateways(running_stack: DockerStack) -> None:
    endpoints = running_stack.up()
    assert len(endpoints.gateway_urls) == 2
    for url in endpoints.gateway_urls:
        assert url.startswith("http://127.0.0.1:")
        response = _complete(url, endpoints.api_keys["default"])
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"]
    assert endpoints.redis_url is not None
    assert endpoints.redis_url.startswith("redis://127.0.0.1:")
    assert set(endpoints.proxies) == {"redis", "upstream.primary", "gateway.0", "gateway.1"}


def test_docker_stack_listens_on_loopback_only(running_stack: DockerStack) -> None:
    listening = listening_addresses()
    for port in running_stack.ports():
        assert listening.get(port) == {"127.0.0.1"}, f"port {port} listens on {listening.get(port)}"


def test_docker_containers_use_host_network(
    running_stack: DockerStack, docker_client: docker.DockerClient
) -> None:
    containers = _stack_containers(docker_client, running_stack)
    assert {container.labels[LABEL_SERVICE] for container in containers} == SERVICES
    for container in containers:
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        assert set(container.attrs["NetworkSettings"]["Networks"]) == {"host"}
        assert container.attrs["HostConfig"]["PortBindings"] in ({}, None)


def test_docker_containers_carry_run_labels(
    running_stack: DockerStack, docker_client: docker.DockerClient
) -> None:
    for container in _stack_containers(docker_client, running_stack):
        assert container.labels[LABEL_RUN_ID] == running_stack.run_id
        assert container.labels[LABEL_STACK] == running_stack.stack_id


def test_docker_services_run_as_non_root(running_stack: DockerStack) -> None:
    for name, service in running_stack.services.items():
        exit_code, output = service.wrapped.exec_run(["id", "-u"])
        assert exit_code == 0, name
        assert isinstance(output, bytes)
        assert output.decode().strip() != "0", f"{name} runs as root"


def test_docker_kill_fault_restarts_upstream(running_stack: DockerStack) -> None:
    endpoints = running_stack.up()
    undo = running_stack.apply_fault("upstream.primary", "kill")
    service = running_stack.services["mock-llm-primary"]
    service.wrapped.reload()
    assert service.wrapped.status == "exited"
    assert not running_stack.is_healthy()
    failed = _complete(endpoints.gateway_urls[0], endpoints.api_keys["default"])
    assert failed.status_code >= 500

    undo()
    assert running_stack.is_healthy()
    assert _complete(endpoints.gateway_urls[0], endpoints.api_keys["default"]).status_code == 200


def test_docker_pause_fault_freezes_redis(running_stack: DockerStack) -> None:
    undo = running_stack.apply_fault("redis", "pause")
    service = running_stack.services["redis"]
    service.wrapped.reload()
    assert service.wrapped.status == "paused"
    undo()
    service.wrapped.reload()
    assert service.wrapped.status == "running"


def test_docker_latency_toxic_slows_upstream(running_stack: DockerStack) -> None:
    endpoints = running_stack.up()
    remove = running_stack.apply_toxic("upstream.primary", LatencyToxic(type="latency", latency=400))
    try:
        started = time.monotonic()
        assert _complete(endpoints.gateway_urls[0], endpoints.api_keys["default"]).status_code == 200
        slowed_s = time.monotonic() - started
    finally:
        remove()
    started = time.monotonic()
    assert _complete(endpoints.gateway_urls[0], endpoints.api_keys["default"]).status_code == 200
    assert slowed_s >= 0.4
    assert time.monotonic() - started < slowed_s


def test_docker_stack_collects_logs(running_stack: DockerStack) -> None:
    endpoints = running_stack.up()
    assert _complete(endpoints.gateway_urls[1], endpoints.api_keys["default"]).status_code == 200
    logs = running_stack.logs()
    assert set(logs) == SERVICES
    for name, path in logs.items():
        assert path.is_file(), name
    assert "/v1/chat/completions" in logs["gateway-1"].read_text()
    assert logs["mock-llm-primary"].read_text()


def test_docker_stack_down_removes_everything(
    tmp_path: Path, docker_images: DockerImages, docker_client: docker.DockerClient, suite_record: SuiteRecord
) -> None:
    stack = DockerStack(StackSpec(), tmp_path, run_id=suite_record.run_id("down"), images=docker_images)
    stack.up()
    ports = stack.ports()
    suite_record.ports.update(ports)
    assert len(_stack_containers(docker_client, stack)) == 4
    stack.down()
    assert _stack_containers(docker_client, stack) == []
    listening = listening_addresses()
    assert [port for port in ports if port in listening] == []
    assert (tmp_path / "gateway-0.log").read_text()
    stack.down()  # a second call is harmless


def test_docker_stack_down_after_exception(
    tmp_path: Path, docker_images: DockerImages, docker_client: docker.DockerClient, suite_record: SuiteRecord
) -> None:
    stack = DockerStack(StackSpec(), tmp_path, run_id=suite_record.run_id("exception"), images=docker_images)
    with pytest.raises(RuntimeError, match="scenario blew up"):
        try:
            stack.up()
            raise RuntimeError("scenario blew up")
        finally:
            suite_record.ports.update(stack.ports())
            stack.down()
    assert _stack_containers(docker_client, stack) == []


def test_docker_failed_start_leaves_nothing(
    tmp_path: Path, docker_images: DockerImages, docker_client: docker.DockerClient, suite_record: SuiteRecord
) -> None:
    spec = StackSpec.model_construct(
        replicas=1,
        upstreams={"primary": UpstreamSpec.model_construct(**{**UpstreamSpec().__dict__, "ttft_ms": -1})},
    )
    stack = DockerStack(StackSpec(), tmp_path, run_id=suite_record.run_id("failed"), images=docker_images)
    stack.spec = spec
    with pytest.raises(StackError, match="mock-llm-primary") as caught:
        stack.up()
    suite_record.ports.update(stack.ports())
    assert "--ttft-ms: input should be greater than or equal to 0" in str(caught.value)
    assert _stack_containers(docker_client, stack) == []
    listening = listening_addresses()
    assert [port for port in stack.ports() if port in listening] == []


def test_docker_missing_image_names_fix(tmp_path: Path, docker_client: docker.DockerClient) -> None:
    images = DockerImages(gateway="slogate-gateway:no-such-tag")
    stack = DockerStack(StackSpec(), tmp_path, run_id="missing-image", images=images)
    with pytest.raises(StackError, match="make offline-images") as caught:
        stack.up()
    assert "slogate-gateway:no-such-tag" in str(caught.value)
    assert docker_client.containers.list(all=True, filters={"label": f"{LABEL_RUN_ID}=missing-image"}) == []


def test_docker_taken_port_retried_elsewhere(
    tmp_path: Path,
    docker_images: DockerImages,
    docker_client: docker.DockerClient,
    suite_record: SuiteRecord,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    taken_port = taken.getsockname()[1]
    picks = iter([taken_port])
    monkeypatch.setattr(
        docker_backend, "free_loopback_port", lambda: next(picks, None) or free_loopback_port()
    )
    stack = DockerStack(StackSpec(), tmp_path, run_id=suite_record.run_id("taken-port"), images=docker_images)
    try:
        stack.up()
        assert stack.services["redis"].port != taken_port
        assert stack.is_healthy()
        names = [
            entry["name"] for entry in json.loads((tmp_path / "containers.json").read_text())["containers"]
        ]
        assert names.count("redis") == 2
        assert len(_stack_containers(docker_client, stack)) == 4
    finally:
        taken.close()
        suite_record.ports.update(stack.ports())
        stack.down()
    assert _stack_containers(docker_client, stack) == []
