"""The local backend starts real processes on loopback and leaves none behind."""

from pathlib import Path

import httpx
import pytest

from harness.scenario.model import StackSpec, UpstreamSpec
from harness.stack.errors import StackError
from harness.stack.local import LocalStack
from harness.stack.pool import StackPool
from tests.conftest import pid_alive

CHAT = {"model": "mock-llm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


def test_local_stack_serves_through_gateway(tmp_path: Path) -> None:
    stack = LocalStack(StackSpec(replicas=2), tmp_path)
    try:
        endpoints = stack.up()
        assert len(endpoints.gateway_urls) == 2
        for url in endpoints.gateway_urls:
            assert url.startswith("http://127.0.0.1:")
            headers = {"authorization": f"Bearer {endpoints.api_keys['default']}"}
            response = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers, timeout=10)
            assert response.status_code == 200
            assert response.json()["choices"][0]["message"]["content"]
        assert endpoints.redis_url is not None and endpoints.redis_url.startswith("redis://127.0.0.1:")
        assert set(stack.logs()) == {"redis", "mock-llm-primary", "gateway-0", "gateway-1"}
    finally:
        pids = stack.pids()
        stack.down()
    assert len(pids) == 4
    assert [pid for pid in pids if pid_alive(pid)] == []


def test_local_stack_down_after_exception(tmp_path: Path) -> None:
    stack = LocalStack(StackSpec(), tmp_path)
    with pytest.raises(RuntimeError, match="scenario blew up"):
        try:
            stack.up()
            raise RuntimeError("scenario blew up")
        finally:
            pids = stack.pids()
            stack.down()
    assert pids
    assert [pid for pid in pids if pid_alive(pid)] == []


def test_local_stack_failed_start_leaves_nothing(tmp_path: Path) -> None:
    stack = LocalStack(StackSpec(), tmp_path)
    stack.spec = StackSpec.model_construct(
        replicas=1,
        upstreams={"primary": UpstreamSpec.model_construct(**{**UpstreamSpec().__dict__, "ttft_ms": -1})},
    )
    with pytest.raises(StackError, match="exited with code") as caught:
        stack.up()
    assert "mock-llm-primary" in str(caught.value)
    assert "--ttft-ms: input should be greater than or equal to 0" in str(caught.value)
    assert "redis" in stack.logs()
    assert [pid for pid in stack.pids() if pid_alive(pid)] == []


def test_stack_pool_reuses_same_settings(tmp_path: Path) -> None:
    pool = StackPool(lambda spec, workdir: LocalStack(spec, workdir), lambda: tmp_path)
    try:
        first, _ = pool.acquire(StackSpec())
        again, _ = pool.acquire(StackSpec())
        assert again is first
        other, _ = pool.acquire(StackSpec(replicas=2))
        assert other is not first
        assert not first.is_healthy()
    finally:
        pool.close()
    assert not other.is_healthy()


def test_local_stack_ignores_gateway_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOGATE_GATEWAY_LOG_LEVEL", "bogus")
    monkeypatch.setenv("SLOGATE_GATEWAY_UPSTREAMS__PRIMARY__BASE_URL", "http://127.0.0.1:9/v1")
    stack = LocalStack(StackSpec(), tmp_path)
    try:
        endpoints = stack.up()
        headers = {"authorization": f"Bearer {endpoints.api_keys['default']}"}
        url = f"{endpoints.gateway_urls[0]}/v1/chat/completions"
        response = httpx.post(url, json=CHAT, headers=headers, timeout=10)
        assert response.status_code == 200
    finally:
        stack.down()
