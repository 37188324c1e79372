"""Graceful shutdown of a real gateway process: SIGTERM during streams, readiness, the drain limit."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from tests.integration.gateway_helpers import MESSAGES, auth_headers, gateway_config, sse_data, upstream
from tests.integration.servers import RunningServer, running_gateway, running_mock

STREAMS = 20


@pytest.fixture
def servers() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def start(
    tmp_path: Path, servers: ExitStack, redis_url: str, drain_s: float, tokens_per_s: str
) -> RunningServer:
    flags = ("--output-tokens", "30", "--tokens-per-s", tokens_per_s)
    mock = servers.enter_context(running_mock("mock", tmp_path, *flags))
    config = gateway_config(redis_url, {"primary": upstream(mock)}, shutdown={"drain_timeout_s": drain_s})
    return servers.enter_context(running_gateway("gateway", tmp_path, config))


async def streams_with_sigterm(gateway: RunningServer, count: int) -> list[list[str]]:
    """Start ``count`` streams, send SIGTERM once each has its first event, return every stream's events."""
    body = {"model": "mock-llm", "messages": MESSAGES, "stream": True}
    started = asyncio.Event()
    first_events = 0

    async def one(session: aiohttp.ClientSession) -> list[str]:
        nonlocal first_events
        url = f"{gateway.url}/v1/chat/completions"
        async with session.post(url, json=body, headers=auth_headers()) as response:
            text = b""
            async for chunk in response.content.iter_any():
                if not text:
                    first_events += 1
                    if first_events == count:
                        started.set()
                text += chunk
            return sse_data(text.decode())

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        tasks = [asyncio.create_task(one(session)) for _ in range(count)]
        await asyncio.wait_for(started.wait(), 10)
        gateway.process.signal(signal.SIGTERM)
        return list(await asyncio.gather(*tasks))


def wait_for_exit(gateway: RunningServer, timeout_s: float) -> float:
    started = time.monotonic()
    while gateway.process.is_running() and time.monotonic() - started < timeout_s:
        time.sleep(0.02)
    return time.monotonic() - started


def test_sigterm_lets_streams_finish(tmp_path: Path, servers: ExitStack, redis_url: str) -> None:
    gateway = start(tmp_path, servers, redis_url, drain_s=10, tokens_per_s="20")  # 1.5 s streams
    results = asyncio.run(streams_with_sigterm(gateway, STREAMS))
    assert len(results) == STREAMS
    for events in results:
        assert events[-1] == "[DONE]"
        last = json.loads(events[-2])
        assert "error" in last or last.get("choices") == [] or last["choices"][0]["finish_reason"] == "stop"
    completed = [events for events in results if '"error"' not in events[-2]]
    assert len(completed) == STREAMS
    assert wait_for_exit(gateway, 8.0) < 8.0


def test_drain_turns_readiness_and_refuses_connections(
    tmp_path: Path, servers: ExitStack, redis_url: str
) -> None:
    gateway = start(tmp_path, servers, redis_url, drain_s=10, tokens_per_s="10")  # 3 s streams
    port = int(gateway.url.rsplit(":", 1)[1])
    body = {"model": "mock-llm", "messages": MESSAGES, "stream": True}
    with httpx.Client(timeout=10) as kept, httpx.Client(timeout=10) as streaming:
        assert kept.get(f"{gateway.url}/readyz").status_code == 200
        with streaming.stream(
            "POST", f"{gateway.url}/v1/chat/completions", json=body, headers=auth_headers()
        ) as response:
            chunks = response.iter_bytes()
            first = next(chunks)
            gateway.process.signal(signal.SIGTERM)
            time.sleep(0.3)
            readiness = kept.get(f"{gateway.url}/readyz")
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            text = first + b"".join(chunks)
    assert readiness.status_code == 503
    assert readiness.json()["status"] == "draining"
    assert readiness.headers["connection"] == "close"
    assert text.endswith(b"data: [DONE]\n\n")
    assert b'"error"' not in text


def test_drain_limit_ends_streams_with_error(tmp_path: Path, servers: ExitStack, redis_url: str) -> None:
    gateway = start(tmp_path, servers, redis_url, drain_s=0.5, tokens_per_s="3")  # 10 s streams
    results = asyncio.run(streams_with_sigterm(gateway, 5))
    for events in results:
        error: dict[str, Any] = json.loads(events[-2])["error"]
        assert error["code"] == "server_shutting_down"
        assert events[-1] == "[DONE]"
    assert wait_for_exit(gateway, 5.0) < 5.0
