"""The mock upstream LLM as a real process: determinism, usage, length cuts, timing and counters."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from target_service.mock_llm.generation import count_prompt_tokens
from tests.integration.servers import RunningServer, running_mock

MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Name three colours of the rainbow."},
]
TTFT_MS = 50.0
TOKENS_PER_S = 200.0
FLAKY_ERROR_RATE = 0.5


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mock-llm")


@pytest.fixture(scope="module")
def mock_seed0(log_dir: Path) -> Iterator[RunningServer]:
    with running_mock("mock-seed0", log_dir, "--seed", "0", "--output-tokens", "12") as server:
        yield server


@pytest.fixture(scope="module")
def mock_seed1(log_dir: Path) -> Iterator[RunningServer]:
    with running_mock("mock-seed1", log_dir, "--seed", "1", "--output-tokens", "12") as server:
        yield server


@pytest.fixture(scope="module")
def mock_timed(log_dir: Path) -> Iterator[RunningServer]:
    args = ["--ttft-ms", str(TTFT_MS), "--tokens-per-s", str(TOKENS_PER_S), "--output-tokens", "8"]
    with running_mock("mock-timed", log_dir, *args, "--chunk-tokens", "2") as server:
        yield server


@pytest.fixture(scope="module")
def mock_flaky(log_dir: Path) -> Iterator[RunningServer]:
    with running_mock("mock-flaky", log_dir, "--seed", "7", "--error-rate", str(FLAKY_ERROR_RATE)) as server:
        yield server


def complete(server: RunningServer, **fields: Any) -> httpx.Response:
    body = {"model": "mock-llm", "messages": MESSAGES, **fields}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=10.0)


def content_of(response: httpx.Response) -> str:
    content: str = response.json()["choices"][0]["message"]["content"]
    return content


def stream_events(server: RunningServer, **fields: Any) -> list[Any]:
    """Return the decoded data of every SSE event of a streamed completion, with [DONE] as a string."""
    body = {"model": "mock-llm", "messages": MESSAGES, "stream": True, **fields}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=10.0)
    data = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    return [item if item == "[DONE]" else json.loads(item) for item in data]


def test_mock_same_seed_same_output(mock_seed0: RunningServer) -> None:
    assert content_of(complete(mock_seed0)) == content_of(complete(mock_seed0))


def test_mock_other_seed_other_output(mock_seed0: RunningServer, mock_seed1: RunningServer) -> None:
    assert content_of(complete(mock_seed0)) != content_of(complete(mock_seed1))


def test_mock_other_prompt_other_output(mock_seed0: RunningServer) -> None:
    other = complete(mock_seed0, messages=[{"role": "user", "content": "Something else entirely."}])
    assert content_of(complete(mock_seed0)) != content_of(other)


def test_mock_stream_matches_json_content(mock_seed0: RunningServer) -> None:
    events = stream_events(mock_seed0)
    streamed = "".join(event["choices"][0]["delta"].get("content", "") for event in events[:-1])
    assert streamed == content_of(complete(mock_seed0))


def test_mock_usage_counts_words(mock_seed0: RunningServer) -> None:
    usage = complete(mock_seed0).json()["usage"]
    assert usage["prompt_tokens"] == count_prompt_tokens(MESSAGES) == 11
    assert usage["completion_tokens"] == 12
    assert usage["total_tokens"] == 23


def test_mock_tokens_are_words(mock_seed0: RunningServer) -> None:
    assert len(content_of(complete(mock_seed0)).split(" ")) == 12


def test_mock_max_tokens_cuts_length(mock_seed0: RunningServer) -> None:
    body = complete(mock_seed0, max_tokens=5).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5


def test_mock_max_completion_tokens_cuts_length(mock_seed0: RunningServer) -> None:
    body = complete(mock_seed0, max_completion_tokens=3).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3


def test_mock_cut_output_is_prefix(mock_seed0: RunningServer) -> None:
    assert content_of(complete(mock_seed0)).startswith(content_of(complete(mock_seed0, max_tokens=4)))


def test_mock_full_length_finishes_stop(mock_seed0: RunningServer) -> None:
    assert complete(mock_seed0, max_tokens=12).json()["choices"][0]["finish_reason"] == "stop"


def test_mock_stream_chunk_shape(mock_seed0: RunningServer) -> None:
    events = stream_events(mock_seed0)
    first = events[0]
    assert first["object"] == "chat.completion.chunk"
    assert first["id"].startswith("chatcmpl-")
    assert isinstance(first["created"], int)
    assert first["model"] == "mock-llm"
    assert first["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    ]
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1] == "[DONE]"


def test_mock_stream_usage_chunk_when_requested(mock_seed0: RunningServer) -> None:
    events = stream_events(mock_seed0, stream_options={"include_usage": True})
    assert events[-2]["choices"] == []
    assert events[-2]["usage"]["completion_tokens"] == 12


def test_mock_stream_no_usage_by_default(mock_seed0: RunningServer) -> None:
    events = stream_events(mock_seed0)
    assert all("usage" not in event for event in events[:-1])


def test_mock_wrong_model_not_found(mock_seed0: RunningServer) -> None:
    response = complete(mock_seed0, model="other-model")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_mock_empty_messages_rejected(mock_seed0: RunningServer) -> None:
    response = complete(mock_seed0, messages=[])
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


async def content_arrival_ms(session: aiohttp.ClientSession, url: str) -> list[float]:
    """Return when each content chunk of a streamed request arrived, in ms after sending it."""
    body = {"model": "mock-llm", "messages": MESSAGES, "stream": True}
    arrivals = []
    started = time.perf_counter()
    async with session.post(f"{url}/v1/chat/completions", json=body) as response:
        async for line in response.content:
            if b'"content":"' in line and b'"content":""' not in line:
                arrivals.append((time.perf_counter() - started) * 1000)
    return arrivals


async def test_mock_ttft_matches_setting(mock_timed: RunningServer) -> None:
    async with aiohttp.ClientSession() as session:
        ttfts = []
        for _ in range(15):
            ttfts.append((await content_arrival_ms(session, mock_timed.url))[0])
            await asyncio.sleep(0.02)
    assert abs(statistics.median(ttfts) - TTFT_MS) < 5.0, ttfts


async def test_mock_paces_tokens(mock_timed: RunningServer) -> None:
    async with aiohttp.ClientSession() as session:
        arrivals = await content_arrival_ms(session, mock_timed.url)
    # 8 tokens in chunks of 2 at 200 tokens/s: one chunk every 10 ms after the first.
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(arrivals) == 4
    assert abs(arrivals[-1] - arrivals[0] - 30.0) < 5.0, arrivals
    assert min(gaps) > 2.0, gaps


def test_mock_stream_chunks_carry_tokens(mock_timed: RunningServer) -> None:
    events = stream_events(mock_timed)
    contents = [event["choices"][0]["delta"]["content"] for event in events[1:-2]]
    assert len(contents) == 4
    assert all(len(text.split()) == 2 for text in contents)


def test_mock_error_sequence_follows_seed(mock_flaky: RunningServer) -> None:
    earlier_requests = httpx.get(f"{mock_flaky.url}/mock/stats").json()["requests"]
    statuses = [complete(mock_flaky).status_code for _ in range(20)]
    rng = random.Random(7)
    draws = [rng.random() for _ in range(earlier_requests + 20)][earlier_requests:]
    expected = [500 if draw < FLAKY_ERROR_RATE else 200 for draw in draws]
    assert statuses == expected


def test_mock_error_body_openai_shape(mock_flaky: RunningServer) -> None:
    responses = [complete(mock_flaky) for _ in range(10)]
    failed = next(response for response in responses if response.status_code == 500)
    assert set(failed.json()["error"]) == {"message", "type", "param", "code"}


def test_mock_stats_count_requests(mock_flaky: RunningServer) -> None:
    before = httpx.get(f"{mock_flaky.url}/mock/stats").json()
    statuses = [complete(mock_flaky).status_code for _ in range(6)]
    after = httpx.get(f"{mock_flaky.url}/mock/stats").json()
    assert after["requests"] - before["requests"] == 6
    assert after["errors"] - before["errors"] == statuses.count(500)
    assert after["in_flight"] == 0


def test_mock_lists_its_model(mock_seed0: RunningServer) -> None:
    body = httpx.get(f"{mock_seed0.url}/v1/models").json()
    assert [model["id"] for model in body["data"]] == ["mock-llm"]


def test_mock_port_in_use_exits_cleanly(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "target_service.mock_llm.cli", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
