"""The mock upstream's injected failures and its record of what reached it, as a real process."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from target_service.mock_llm.generation import generate
from tests.integration.servers import RunningServer, running_mock

MESSAGES = [{"role": "user", "content": "Tell me about Zürich and 東京 in a few words."}]


@pytest.fixture
def mock(tmp_path: Path) -> Iterator[RunningServer]:
    with running_mock("mock", tmp_path, "--output-tokens", "32") as server:
        yield server


def patch_settings(server: RunningServer, **changes: Any) -> httpx.Response:
    return httpx.patch(f"{server.url}/mock/settings", json=changes, timeout=5.0)


def stats(server: RunningServer) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(f"{server.url}/mock/stats", timeout=5.0).json()
    return result


def chat(
    server: RunningServer, stream: bool = False, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {"model": "mock-llm", "messages": MESSAGES, "stream": stream}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=10.0)


def test_mock_injects_429_with_retry_after(mock: RunningServer) -> None:
    patch_settings(mock, error_rate=1.0, error_status=429, retry_after_s=3)
    response = chat(mock)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_mock_injects_503(mock: RunningServer) -> None:
    patch_settings(mock, error_rate=1.0, error_status=503)
    assert chat(mock).status_code == 503
    patch_settings(mock, error_rate=0.0)
    assert chat(mock).status_code == 200


def test_mock_rejects_invalid_settings(mock: RunningServer) -> None:
    response = patch_settings(mock, error_status=200)
    assert response.status_code == 400
    assert "error_status" in response.text


def test_mock_stalls_mid_stream(mock: RunningServer) -> None:
    patch_settings(mock, stall_after_tokens=4, stall_ms=400)
    started = time.monotonic()
    response = chat(mock, stream=True)
    assert time.monotonic() - started >= 0.4
    assert response.text.endswith("data: [DONE]\n\n")


def test_mock_disconnects_mid_stream(mock: RunningServer) -> None:
    patch_settings(mock, disconnect_after_tokens=3)
    with pytest.raises(httpx.RemoteProtocolError):
        chat(mock, stream=True)


def read_raw_stream(server: RunningServer) -> list[bytes]:
    """Send a streaming request over a plain socket and return each network read of the response."""
    port = int(server.url.rsplit(":", 1)[1])
    body = json.dumps({"model": "mock-llm", "messages": MESSAGES, "stream": True}).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body
    reads = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        while data := sock.recv(65536):
            reads.append(data)
    return reads


def test_mock_splits_multibyte_characters(mock: RunningServer) -> None:
    patch_settings(mock, split_utf8=True)
    reads = read_raw_stream(mock)
    cut_inside_character = 0
    for data in reads:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            cut_inside_character += 1
    assert any(ord(char) > 127 for char in generate(0, "mock-llm", MESSAGES, 32, None).text)
    assert cut_inside_character > 0


def test_mock_records_arrivals(mock: RunningServer) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    chat(mock, headers={"x-request-id": "arrival-1", "traceparent": traceparent})
    (arrival,) = stats(mock)["arrivals"]
    assert arrival["request_id"] == "arrival-1"
    assert arrival["traceparent"] == traceparent
    assert abs(arrival["at"] - time.time()) < 5.0


def test_mock_reset_forgets_arrivals(mock: RunningServer) -> None:
    chat(mock)
    httpx.post(f"{mock.url}/mock/reset", timeout=5.0)
    assert stats(mock)["requests"] == 0
    assert stats(mock)["arrivals"] == []


def test_mock_records_client_disconnect(mock: RunningServer) -> None:
    patch_settings(mock, tokens_per_s=10)
    body = {"model": "mock-llm", "messages": MESSAGES, "stream": True}
    with (
        httpx.Client(timeout=10.0) as client,
        client.stream("POST", f"{mock.url}/v1/chat/completions", json=body) as response,
    ):
        next(response.iter_bytes())
        closed_at = time.time()
    deadline = time.monotonic() + 3.0
    while not stats(mock)["disconnects"] and time.monotonic() < deadline:
        time.sleep(0.05)
    (noticed_at,) = stats(mock)["disconnected_at"]
    assert noticed_at - closed_at < 1.0
