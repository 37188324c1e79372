"""Fixtures of the docker backend's tests: the engine, the images, and what the suite started.

Every test here needs a Docker engine and the images of ``make offline-images``. Without them the
tests skip with the reason, unless SLOGATE_REQUIRE_DOCKER is set (as CI does), which makes a
missing engine or image a failure.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import docker
import pytest

from harness.stack.docker import LABEL_MANAGED, LABEL_RUN_ID, engine_client, require_images
from harness.stack.errors import StackError
from harness.stack.images import DockerImages

REQUIRE_DOCKER_VARIABLE = "SLOGATE_REQUIRE_DOCKER"
TCP_LISTEN_STATE = "0A"


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_DOCKER_VARIABLE):
        pytest.fail(f"{reason} ({REQUIRE_DOCKER_VARIABLE} is set, so this fails instead of skipping)")
    pytest.skip(reason)


@dataclass
class SuiteRecord:
    """Run ids and loopback ports that the docker tests used, for the final cleanup check."""

    run_id_prefix: str = field(default_factory=lambda: f"docker-tests-{uuid.uuid4().hex[:8]}")
    ports: set[int] = field(default_factory=set)

    def run_id(self, name: str) -> str:
        return f"{self.run_id_prefix}-{name}"

    def add_listing(self, listing_path: Path) -> None:
        """Record the ports of a containers.json that a stack wrote."""
        listing = json.loads(listing_path.read_text())
        self.ports.update(entry["port"] for entry in listing["containers"])
        self.ports.update(listing["proxy_ports"])


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = engine_client()
    except StackError as exc:
        _unavailable(str(exc))
    yield client
    client.close()


@pytest.fixture(scope="session")
def docker_images(docker_client: docker.DockerClient) -> DockerImages:
    images = DockerImages()
    try:
        require_images(docker_client, [images.gateway, images.redis])
    except StackError as exc:
        _unavailable(str(exc))
    return images


@pytest.fixture(scope="session")
def suite_record() -> SuiteRecord:
    return SuiteRecord()


def suite_containers(client: docker.DockerClient, record: SuiteRecord) -> list[str]:
    """Return the names of containers, running or not, that carry a run id of this suite."""
    containers = client.containers.list(all=True, filters={"label": f"{LABEL_MANAGED}=true"})
    return [
        str(container.name)
        for container in containers
        if container.labels.get(LABEL_RUN_ID, "").startswith(record.run_id_prefix)
    ]


def listening_addresses() -> dict[int, set[str]]:
    """Return the local address of every listening TCP socket of this network namespace, by port."""
    listening: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                address, port = fields[1].split(":")
                if fields[3] == TCP_LISTEN_STATE:
                    listening.setdefault(int(port, 16), set()).add(_decode_address(address))
    return listening


def _decode_address(hex_address: str) -> str:
    if len(hex_address) == 8:
        return ".".join(str(int(hex_address[i : i + 2], 16)) for i in (6, 4, 2, 0))
    return f"ipv6:{hex_address}"
