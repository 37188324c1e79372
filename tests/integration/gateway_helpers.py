"""Helpers for tests of one gateway process in front of mock upstreams: configs, requests, stats."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from target_service.config import hash_api_key
from tests.integration.servers import RunningServer

KEYS = {"team-a": "sk-test-resilience-a", "team-b": "sk-test-resilience-b"}
MESSAGES = [{"role": "user", "content": "Tell me about Zürich and 東京, briefly."}]


def tenants(**limits: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {"keys": [{"id": f"{name}-key", "sha256": hash_api_key(key)}], "limits": limits.get(name, {})}
        for name, key in KEYS.items()
    }


def upstream(mock: RunningServer, **settings: Any) -> dict[str, Any]:
    """Return an upstream entry for ``mock`` with no retries and no breaker unless ``settings`` add them."""
    defaults: dict[str, Any] = {"retry": {"max_attempts": 1}, "breaker": {"enabled": False}}
    return {"base_url": f"{mock.url}/v1", **defaults, **settings}


def gateway_config(redis_url: str, upstreams: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """Return a config with model ``mock-llm`` on the first upstream, the rest as its fallbacks."""
    names = list(upstreams)
    models = {"mock-llm": {"upstream": names[0], "fallbacks": names[1:]}}
    return {
        "redis": {"url": redis_url},
        "upstreams": upstreams,
        "models": sections.pop("models", models),
        "tenants": sections.pop("tenants", tenants()),
        **sections,
    }


def chat(
    gateway: RunningServer,
    stream: bool = False,
    tenant: str = "team-a",
    headers: dict[str, str] | None = None,
    timeout_s: float = 15.0,
    **fields: Any,
) -> httpx.Response:
    body = {"model": "mock-llm", "messages": MESSAGES, "stream": stream, **fields}
    auth = {"authorization": f"Bearer {KEYS[tenant]}"}
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=body,
        headers={**auth, **(headers or {})},
        timeout=timeout_s,
    )


def auth_headers(tenant: str = "team-a") -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[tenant]}"}


def sse_data(text: str) -> list[str]:
    return [event.removeprefix("data: ") for event in text.split("\n\n") if event]


def stream_content(text: str) -> str:
    """Return the concatenated content deltas of an SSE body."""
    parts = []
    for data in sse_data(text):
        if data == "[DONE]":
            continue
        event = json.loads(data)
        for choice in event.get("choices") or ():
            parts.append(choice.get("delta", {}).get("content") or "")
    return "".join(parts)


def mock_stats(mock: RunningServer) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(f"{mock.url}/mock/stats", timeout=5.0).json()
    return result


def set_mock(mock: RunningServer, **changes: Any) -> None:
    httpx.patch(f"{mock.url}/mock/settings", json=changes, timeout=5.0).raise_for_status()


def reset_mock(mock: RunningServer) -> None:
    httpx.post(f"{mock.url}/mock/reset", timeout=5.0).raise_for_status()


def metric_samples(gateway: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{gateway.url}/metrics", timeout=5.0).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def log_events(log_path: Path, event: str) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line]
    return [entry for entry in entries if entry.get("event") == event]


def wait_for_log(log_path: Path, event: str, count: int = 1, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """Return the log lines of ``event`` once there are ``count`` of them; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = log_events(log_path, event)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def request_log(server: RunningServer, request_id: str, timeout_s: float = 3.0) -> dict[str, Any]:
    """Return the request log line with ``request_id``, which is written just after the response."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for entry in log_events(server.process.log_path, "request"):
            if entry.get("request_id") == request_id:
                return entry
        time.sleep(0.05)
    raise AssertionError(f"no request log line with request_id {request_id} in {server.process.log_path}")
