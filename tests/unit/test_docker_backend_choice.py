"""Choosing --backend docker: the stack it builds, its image options, and the options it rejects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import _parser, _pytest_args
from harness.plugin import HarnessRun
from harness.runner import BACKENDS, RunSettings
from harness.scenario.stack import StackSpec
from harness.stack.docker import LABEL_MANAGED, LABEL_RUN_ID, DockerStack
from harness.stack.errors import UnsupportedFault
from harness.stack.images import DEFAULT_GATEWAY_IMAGE, DEFAULT_REDIS_IMAGE, DockerImages

REPO = Path(__file__).resolve().parents[2]


def test_docker_is_a_backend() -> None:
    assert "docker" in BACKENDS
    assert RunSettings(backend="docker").backend == "docker"


def test_backend_factory_builds_docker_stack(tmp_path: Path) -> None:
    images = DockerImages(gateway="registry.invalid/gateway:1.0", redis="redis:7")
    run = HarnessRun(RunSettings(run_id="run-7", backend="docker"), 12.0, docker_images=images)
    stack = run.backend_factory()(StackSpec(), tmp_path)
    assert isinstance(stack, DockerStack)
    assert stack.images == images
    assert stack.ready_timeout_s == 12.0
    assert stack.labels[LABEL_RUN_ID] == "run-7"
    assert stack.labels[LABEL_MANAGED] == "true"
    assert stack.endpoints is None


def test_docker_stacks_get_distinct_ids(tmp_path: Path) -> None:
    first = DockerStack(StackSpec(), tmp_path, run_id="r")
    second = DockerStack(StackSpec(), tmp_path, run_id="r")
    assert first.stack_id != second.stack_id
    assert first.images == DockerImages(DEFAULT_GATEWAY_IMAGE, DEFAULT_REDIS_IMAGE)


def test_cli_forwards_docker_images() -> None:
    argv = ["run", "scenarios/smoke.yaml", "--backend", "docker", "--docker-image", "gateway:test",
            "--docker-redis-image", "redis:test"]  # fmt: skip
    args, extra = _parser().parse_known_args(argv)
    pytest_args = _pytest_args(args, [Path("scenarios/smoke.yaml")], extra)
    assert "--backend=docker" in pytest_args
    assert "--docker-image=gateway:test" in pytest_args
    assert "--docker-redis-image=redis:test" in pytest_args


def test_docker_backend_rejects_toxiproxy(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(REPO / "scenarios" / "smoke.yaml"),
         "--backend", "docker", "--fault-proxy", "toxiproxy", "--reports-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 4, result.stdout + result.stderr
    assert "--fault-proxy toxiproxy applies to the local backend" in result.stderr


def test_docker_stack_rejects_restart_fault(tmp_path: Path) -> None:
    stack = DockerStack(StackSpec(replicas=2), tmp_path, run_id="r")
    assert stack.fault_actions == ("kill", "pause")
    with pytest.raises(UnsupportedFault, match="--backend local"):
        stack.apply_fault("gateway.1", "restart")
