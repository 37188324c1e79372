"""Runs last among the docker tests: nothing the suite started is left, whatever the other tests did."""

from __future__ import annotations

import docker
import pytest

from tests.docker.conftest import SuiteRecord, listening_addresses, suite_containers

pytestmark = pytest.mark.docker


def test_suite_left_no_containers(docker_client: docker.DockerClient, suite_record: SuiteRecord) -> None:
    assert suite_containers(docker_client, suite_record) == []


def test_suite_left_no_bound_ports(suite_record: SuiteRecord) -> None:
    if not suite_record.ports:
        pytest.skip("no docker test that starts a stack ran before this one")
    listening = listening_addresses()
    assert sorted(port for port in suite_record.ports if port in listening) == []
