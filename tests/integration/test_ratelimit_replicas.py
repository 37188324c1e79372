"""One key's limit holds exactly when a burst is spread over several gateway replicas sharing one Redis."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import redis

from target_service.config import hash_api_key
from tests.integration.servers import RunningServer, running_gateway, running_mock

API_KEY = "sk-test-burst"
LIMIT = 50
BURST = 200
REPLICAS = 3


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[list[RunningServer]]:
    log_dir = tmp_path_factory.mktemp("replicas")
    with contextlib.ExitStack() as servers:
        mock = servers.enter_context(
            running_mock("mock", log_dir, "--tokens-per-s", "0", "--output-tokens", "2")
        )
        config = {
            "redis": {"url": redis_url},
            "upstreams": {"primary": {"base_url": f"{mock.url}/v1"}},
            "models": {"mock-llm": {"upstream": "primary"}},
            "tenants": {
                "burst": {
                    "keys": [{"id": "burst-key", "sha256": hash_api_key(API_KEY)}],
                    "limits": {"requests_per_minute": LIMIT},
                }
            },
        }
        yield [
            servers.enter_context(running_gateway(f"gateway-{n}", log_dir, config)) for n in range(REPLICAS)
        ]


async def burst(urls: list[str]) -> list[tuple[int, dict[str, str]]]:
    """Send BURST requests at once, round-robin over ``urls``; return each status and its headers."""
    body: dict[str, Any] = {
        "model": "mock-llm",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 2,
    }
    headers = {"authorization": f"Bearer {API_KEY}"}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        start = asyncio.Event()

        async def one(url: str) -> tuple[int, dict[str, str]]:
            await start.wait()
            async with session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as response:
                await response.read()
                return response.status, dict(response.headers)

        tasks = [asyncio.create_task(one(urls[n % len(urls)])) for n in range(BURST)]
        await asyncio.sleep(0.1)
        start.set()
        return await asyncio.gather(*tasks)


@pytest.mark.parametrize("round_", range(5))
def test_burst_over_replicas_admits_exactly_limit(
    replicas: list[RunningServer], redis_url: str, round_: int
) -> None:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    results = asyncio.run(burst([server.url for server in replicas]))
    statuses = Counter(status for status, _ in results)
    assert statuses == {200: LIMIT, 429: BURST - LIMIT}
    rejected = [headers for status, headers in results if status == 429]
    assert all(int(headers["Retry-After"]) >= 1 for headers in rejected)
