"""Fixtures shared by the integration tests: a real Redis server per module, mock LLMs per test."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.stack.redis_server import start_redis
from tests.integration.servers import running_mock


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, url = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        process.stop()


@pytest.fixture
def mock_llm_factory(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start mock upstream LLMs with the given command-line flags; return each one's base URL."""
    with contextlib.ExitStack() as servers:
        count = 0

        def start(*flags: str) -> str:
            nonlocal count
            count += 1
            return servers.enter_context(running_mock(f"mock-{count}", tmp_path, *flags)).url

        yield start
