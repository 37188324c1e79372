"""Retry backoff and budget, circuit breaker states and fallback chains, with a fake clock."""

from __future__ import annotations

import random
from typing import Any

import pytest

from target_service.config import BreakerConfig, GatewayConfig, RetryConfig, RouteTarget
from target_service.resilience import BreakerState, CircuitBreaker, RetryBudget, RetryPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_full_jitter_bounds() -> None:
    policy = RetryPolicy(RetryConfig(base_backoff_s=0.1, max_backoff_s=0.3), random.Random(1))
    first = [policy.backoff_s(1, None) for _ in range(500)]
    third = [policy.backoff_s(3, None) for _ in range(500)]
    assert all(delay is not None and 0 <= delay <= 0.1 for delay in first)
    assert all(delay is not None and 0 <= delay <= 0.3 for delay in third)
    assert max(d for d in third if d is not None) > 0.25


def test_backoff_retry_after_floor() -> None:
    policy = RetryPolicy(RetryConfig(base_backoff_s=0.1, max_backoff_s=2.0))
    assert policy.backoff_s(1, 1.5) == 1.5
    assert policy.backoff_s(1, 2.5) is None


def test_budget_caps_retry_share() -> None:
    clock = FakeClock()
    budget = RetryBudget(RetryConfig(budget_ratio=0.2, budget_min_retries=0, budget_window_s=10), clock)
    for _ in range(100):
        budget.record_attempt()
    granted = sum(budget.try_spend() for _ in range(100))
    assert granted == 20
    clock.now += 11
    assert not budget.try_spend()


def test_budget_minimum_without_traffic() -> None:
    budget = RetryBudget(RetryConfig(budget_ratio=0.2, budget_min_retries=3), FakeClock())
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]


def breaker(clock: FakeClock, **settings: Any) -> tuple[CircuitBreaker, list[BreakerState]]:
    states: list[BreakerState] = []
    config = BreakerConfig(min_calls=4, failure_ratio=0.5, window_s=10, cooldown_s=5, **settings)
    return CircuitBreaker("primary", config, lambda _, state: states.append(state), clock), states


def fail(circuit: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        permit = circuit.acquire()
        assert permit is not None
        permit.failure()


def test_breaker_needs_min_calls() -> None:
    circuit, _ = breaker(FakeClock())
    fail(circuit, 3)
    assert circuit.state is BreakerState.CLOSED
    fail(circuit, 1)
    assert circuit.state is BreakerState.OPEN


def test_breaker_ratio_below_threshold_stays_closed() -> None:
    circuit, _ = breaker(FakeClock())
    for _ in range(7):
        permit = circuit.acquire()
        assert permit is not None
        permit.success()
    fail(circuit, 3)
    assert circuit.state is BreakerState.CLOSED


def test_breaker_half_open_admits_probes() -> None:
    clock = FakeClock()
    circuit, states = breaker(clock, half_open_probes=2)
    fail(circuit, 4)
    assert circuit.acquire() is None
    clock.now += 5
    probes = [circuit.acquire(), circuit.acquire()]
    assert circuit.acquire() is None
    assert all(probe is not None and probe.probe for probe in probes)
    for probe in probes:
        assert probe is not None
        probe.success()
    assert states == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_breaker_probe_failure_reopens() -> None:
    clock = FakeClock()
    circuit, states = breaker(clock)
    fail(circuit, 4)
    clock.now += 5
    fail(circuit, 1)
    assert states == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN]
    assert circuit.retry_after_s() == 5


def test_breaker_released_probe_frees_slot() -> None:
    clock = FakeClock()
    circuit, _ = breaker(clock)
    fail(circuit, 4)
    clock.now += 5
    probe = circuit.acquire()
    assert probe is not None
    probe.release()
    assert circuit.acquire() is not None


def test_breaker_ignores_stale_outcomes() -> None:
    clock = FakeClock()
    circuit, _ = breaker(clock)
    early = circuit.acquire()
    fail(circuit, 4)
    clock.now += 5
    assert early is not None
    early.failure()
    assert circuit.state is BreakerState.HALF_OPEN


def config_with(models: dict[str, Any]) -> GatewayConfig:
    return GatewayConfig(
        upstreams={name: {"base_url": f"http://127.0.0.1:9/{name}"} for name in ("a", "b", "c")},
        models=models,
        auth={"allow_anonymous": True},
    )


def test_chain_expands_model_references() -> None:
    config = config_with(
        {
            "big": {"upstream": "a", "fallbacks": ["b", {"model": "small"}]},
            "small": {"upstream": "c", "upstream_model": "tiny"},
        }
    )
    assert config.route_chain("big") == [
        RouteTarget(upstream="a", upstream_model="big"),
        RouteTarget(upstream="b", upstream_model="big"),
        RouteTarget(upstream="c", upstream_model="tiny"),
    ]


def test_chain_cycle_rejected() -> None:
    with pytest.raises(ValueError, match="fallback cycle one -> two -> one"):
        config_with(
            {
                "one": {"upstream": "a", "fallbacks": [{"model": "two"}]},
                "two": {"upstream": "b", "fallbacks": [{"model": "one"}]},
            }
        )


def test_chain_repeated_upstream_rejected() -> None:
    with pytest.raises(ValueError, match="tries upstream 'a' with model 'm' twice"):
        config_with({"m": {"upstream": "a", "fallbacks": ["b", "a"]}})


def test_chain_unknown_fallback_rejected() -> None:
    with pytest.raises(ValueError, match="routes to upstream 'zzz', which is not configured"):
        config_with({"m": {"upstream": "a", "fallbacks": ["zzz"]}})


def test_renamed_read_timeout_explained() -> None:
    with pytest.raises(ValueError, match="read_timeout_s was renamed idle_timeout_s"):
        GatewayConfig(
            upstreams={"a": {"base_url": "http://127.0.0.1:9/v1", "read_timeout_s": 5}},
            models={"m": {"upstream": "a"}},
            auth={"allow_anonymous": True},
        )
