"""Streaming through a real gateway process: pass-through timing, disconnects, broken streams, UTF-8."""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from target_service.mock_llm.generation import generate
from tests.integration.gateway_helpers import (
    MESSAGES,
    auth_headers,
    chat,
    gateway_config,
    metric_samples,
    mock_stats,
    set_mock,
    sse_data,
    stream_content,
    tenants,
    upstream,
)
from tests.integration.servers import RunningServer, running_gateway, running_mock


@pytest.fixture
def servers() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.fixture
def start_mock(tmp_path: Path, servers: ExitStack) -> Callable[..., RunningServer]:
    def start(*flags: str) -> RunningServer:
        return servers.enter_context(running_mock("mock", tmp_path, *flags))

    return start


@pytest.fixture
def start_gateway(tmp_path: Path, servers: ExitStack, redis_url: str) -> Callable[..., RunningServer]:
    def start(upstreams: dict[str, Any], **sections: Any) -> RunningServer:
        config = gateway_config(redis_url, upstreams, **sections)
        return servers.enter_context(running_gateway("gateway", tmp_path, config))

    return start


def content_arrivals(gateway: RunningServer) -> list[float]:
    """Stream a completion and return when each content chunk arrived, in seconds after sending."""
    body = {"model": "mock-llm", "messages": MESSAGES, "stream": True}
    arrivals = []
    started = time.monotonic()
    url = f"{gateway.url}/v1/chat/completions"
    with httpx.stream("POST", url, json=body, headers=auth_headers(), timeout=15) as response:
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                arrivals.append(time.monotonic() - started)
    return arrivals


def test_stream_chunks_pass_through_unbuffered(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    mock = start_mock("--output-tokens", "6", "--tokens-per-s", "10")
    gateway = start_gateway({"primary": upstream(mock)})
    arrivals = content_arrivals(gateway)
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(arrivals) == 6
    assert min(gaps) > 0.05, gaps  # one chunk every 100 ms, each passed on when it came


def test_client_disconnect_cancels_upstream_and_frees_slots(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    mock = start_mock("--output-tokens", "200", "--tokens-per-s", "20")
    gateway = start_gateway(
        {"primary": upstream(mock, max_connections=1)},
        tenants=tenants(**{"team-a": {"concurrency": 1}}),
        load_shedding={"max_in_flight_per_tenant": 1},
    )
    body = {"model": "mock-llm", "messages": MESSAGES, "stream": True}
    url = f"{gateway.url}/v1/chat/completions"
    with (
        httpx.Client(timeout=10.0) as client,
        client.stream("POST", url, json=body, headers=auth_headers()) as response,
    ):
        next(response.iter_bytes())
        closed_at = time.time()
    deadline = time.monotonic() + 2.0
    while not mock_stats(mock)["disconnects"] and time.monotonic() < deadline:
        time.sleep(0.02)
    (noticed_at,) = mock_stats(mock)["disconnected_at"]
    assert noticed_at - closed_at < 1.0
    assert mock_stats(mock)["in_flight"] == 0
    set_mock(mock, tokens_per_s=0)
    assert chat(gateway, timeout_s=5).status_code == 200  # upstream slot, tenant lease and shed count free
    assert metric_samples(gateway)[("slogate_in_flight_requests", ())] == 0


def test_broken_stream_ends_with_error_event(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    mock = start_mock("--output-tokens", "16", "--disconnect-after-tokens", "4")
    gateway = start_gateway({"primary": upstream(mock)})
    response = chat(gateway, stream=True)
    events = sse_data(response.text)
    error = json.loads(events[-2])["error"]
    assert response.status_code == 200
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "upstream_error"
    assert events[-1] == "[DONE]"
    assert stream_content(response.text) == "".join(generate(0, "mock-llm", MESSAGES, 16, None).tokens[:4])


def raw_stream_body(gateway: RunningServer) -> bytes:
    """Return the response body bytes of a streamed request, read from a plain socket."""
    port = int(gateway.url.rsplit(":", 1)[1])
    body = json.dumps({"model": "mock-llm", "messages": MESSAGES, "stream": True}).encode()
    head = "".join(f"{name}: {value}\r\n" for name, value in auth_headers().items())
    request = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"{head}content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(request)
        while data := sock.recv(65536):
            received += data
    return bytes(received)


def test_split_utf8_reaches_client_intact(
    start_mock: Callable[..., RunningServer], start_gateway: Callable[..., RunningServer]
) -> None:
    mock = start_mock("--output-tokens", "32", "--split-utf8")
    gateway = start_gateway({"primary": upstream(mock)})
    expected = generate(0, "mock-llm", MESSAGES, 32, None).text
    response = chat(gateway, stream=True)
    raw = raw_stream_body(gateway)
    assert any(ord(char) > 127 for char in expected)
    assert stream_content(response.text).encode("utf-8") == expected.encode("utf-8")
    assert b"\xef\xbf\xbd" not in raw  # no U+FFFD replacement character anywhere
    for word in expected.split():
        if not word.isascii():
            assert word.encode("utf-8") in raw, word
