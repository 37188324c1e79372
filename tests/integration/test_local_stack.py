"""The local backend starts real processes on loopback and leaves none behind."""

import socket
from pathlib import Path

import httpx
import pytest

from harness.load.progress import ProgressSnapshot
from harness.runner import RunSettings, run_scenario
from harness.scenario.faults import DownToxic, LatencyToxic
from harness.scenario.loader import load_scenario
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
        assert set(stack.logs()) == {"redis", "fault-proxy", "mock-llm-primary", "gateway-0", "gateway-1"}
    finally:
        pids = stack.pids()
        stack.down()
    assert len(pids) == 5
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


def chat(endpoints, **fields: object) -> httpx.Response:  # type: ignore[no-untyped-def]
    headers = {"authorization": f"Bearer {endpoints.api_keys['default']}"}
    body = {**CHAT, "stream": True, **fields}
    return httpx.post(
        f"{endpoints.gateway_urls[0]}/v1/chat/completions", json=body, headers=headers, timeout=10
    )


def test_local_stack_proxies_every_service(tmp_path: Path) -> None:
    stack = LocalStack(StackSpec(proxy_gateways=True), tmp_path, fault_proxy="embedded")
    try:
        endpoints = stack.up()
        assert set(endpoints.proxies) == {"redis", "upstream.primary", "gateway.0"}
        assert endpoints.gateway_urls[0].endswith(endpoints.proxies["gateway.0"].rsplit(":", 1)[1])
        assert endpoints.upstream_urls["primary"] == f"http://{endpoints.proxies['upstream.primary']}/v1"
        assert chat(endpoints).status_code == 200
    finally:
        stack.down()


def test_local_stack_latency_toxic_slows_upstream(tmp_path: Path) -> None:
    stack = LocalStack(StackSpec(), tmp_path, fault_proxy="embedded")
    try:
        endpoints = stack.up()
        before = chat(endpoints).elapsed.total_seconds()
        toxic = LatencyToxic(type="latency", latency=400)
        remove = stack.apply_toxic("upstream.primary", toxic)
        slowed = chat(endpoints).elapsed.total_seconds()
        remove()
        after = chat(endpoints).elapsed.total_seconds()
        assert slowed > before + 0.35
        assert after < slowed - 0.3
    finally:
        stack.down()


def test_local_stack_down_toxic_takes_redis_away(tmp_path: Path) -> None:
    spec = StackSpec.model_validate({"tenants": {"t": {"limits": {"requests_per_minute": 1000}}}})
    stack = LocalStack(spec, tmp_path, fault_proxy="embedded")
    try:
        endpoints = stack.up()
        headers = {"authorization": f"Bearer {endpoints.api_keys['t']}"}
        url = f"{endpoints.gateway_urls[0]}/v1/chat/completions"
        checked = httpx.post(url, json=CHAT, headers=headers, timeout=10)
        restore = stack.apply_toxic("redis", DownToxic(type="down"))
        unchecked = httpx.post(url, json=CHAT, headers=headers, timeout=10)
        readiness = httpx.get(f"{endpoints.gateway_urls[0]}/readyz", timeout=10).json()
        restore()
        assert "x-ratelimit-remaining-requests" in checked.headers
        assert unchecked.status_code == 200
        assert "x-ratelimit-remaining-requests" not in unchecked.headers
        assert readiness["status"] == "degraded"
    finally:
        stack.down()


def test_local_stack_reset_removes_toxics(tmp_path: Path) -> None:
    stack = LocalStack(StackSpec(), tmp_path, fault_proxy="embedded")
    try:
        stack.up()
        stack.apply_toxic("upstream.primary", LatencyToxic(type="latency", latency=1000))
        stack.reset_state()
        assert stack.front is not None
        assert all(not proxy.toxics for proxy in stack.front.client.proxies().values())
    finally:
        stack.down()


def test_local_stack_gateway_toxic_needs_proxy(tmp_path: Path) -> None:
    stack = LocalStack(StackSpec(), tmp_path, fault_proxy="embedded")
    try:
        stack.up()
        with pytest.raises(StackError, match=r"stack\.proxy_gateways: true"):
            stack.apply_toxic("gateway.0", LatencyToxic(type="latency", latency=10))
    finally:
        stack.down()


def test_toxiproxy_mode_needs_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    stack = LocalStack(StackSpec(), tmp_path, fault_proxy="toxiproxy")
    with pytest.raises(StackError, match="needs toxiproxy-server on PATH"):
        stack.up()


CRASHING_SCENARIO = """\
version: 1
name: crash-mid-fault
load:
  model: open
  rate_per_s: 10
  duration: 30s
  requests: [{messages: [{role: user, content: hi}], max_tokens: 3}]
faults:
  - {at: 200ms, for: 60s, target: upstream.primary, toxic: {type: latency, latency: 100}}
  - {at: 200ms, for: 60s, target: redis, action: pause}
slo:
  - {metric: error_rate, max: 0%}
"""


def process_state(pid: int) -> str:
    """Return the state letter of /proc/PID/stat: T when stopped by a signal."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def test_crash_mid_fault_undoes_every_fault(tmp_path: Path) -> None:
    path = tmp_path / "crash-mid-fault.yaml"
    path.write_text(CRASHING_SCENARIO, encoding="utf-8")
    loaded = load_scenario(path)
    stack = LocalStack(loaded.scenario.stack, tmp_path / "stack", fault_proxy="embedded")

    def crash_once_faults_are_on(snapshot: ProgressSnapshot) -> None:
        if snapshot.elapsed_s > 1.0:
            raise RuntimeError("the harness failed mid-fault")

    try:
        endpoints = stack.up()
        settings = RunSettings(run_id="crash", reports_dir=tmp_path / "reports")
        with pytest.raises(RuntimeError, match="mid-fault"):
            run_scenario(loaded, stack, endpoints, settings, progress=crash_once_faults_are_on)
        assert stack.front is not None
        proxies = stack.front.client.proxies()
        redis_pid = stack.services["redis"].process.pid
        assert redis_pid is not None
        assert {name: proxy.toxics for name, proxy in proxies.items()} == {name: () for name in proxies}
        assert process_state(redis_pid) != "T"
        assert chat(endpoints).status_code == 200
        proxy_address = endpoints.proxies["redis"]
        pids = stack.pids()
    finally:
        stack.down()
    assert [pid for pid in pids if pid_alive(pid)] == []
    host, port = proxy_address.rsplit(":", 1)
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=1).close()
