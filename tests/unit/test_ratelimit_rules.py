"""Rate-limit arithmetic that needs no Redis: reservations, headers and limit scaling."""

from __future__ import annotations

import math

import pytest

from target_service.config import RateLimitConfig, TenantLimits
from target_service.metrics import GatewayMetrics
from target_service.ratelimit import RateLimiter, format_reset, ratelimit_headers, reserve_tokens
from target_service.tenancy import Principal


@pytest.mark.parametrize(
    ("milliseconds", "text"),
    [(0, "0ms"), (250, "250ms"), (1000, "1s"), (1500, "1.5s"), (90_000, "1m30s"), (3_600_000, "60m0s")],
)
def test_format_reset(milliseconds: int, text: str) -> None:
    assert format_reset(milliseconds) == text


def test_reserve_tokens_prompt_and_cap() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 100}
    prompt_chars = len('[{"role": "user", "content": ""}]') + 400
    assert reserve_tokens(body, 256) == 100 + math.ceil(prompt_chars / 4)  # about 4 characters a token


def test_reserve_tokens_defaults_and_choices() -> None:
    body = {"messages": [], "n": 3}
    assert reserve_tokens(body, 50) == 1 + 150


def test_reserve_tokens_prefers_max_completion_tokens() -> None:
    body = {"messages": [], "max_tokens": 10, "max_completion_tokens": 20}
    assert reserve_tokens(body, 256) == 21


class _Client:
    def register_script(self, script: str) -> object:
        return object()


class _Gate:
    client = _Client()


def limiter(window_s: float = 60.0) -> RateLimiter:
    return RateLimiter(_Gate(), RateLimitConfig(window_s=window_s), GatewayMetrics(), lease_s=10)  # type: ignore[arg-type]


def test_checks_scale_per_minute_limits_to_window() -> None:
    principal = Principal("t", "k", TenantLimits(requests_per_minute=600, tokens_per_minute=6000))
    checks = limiter(window_s=6).checks_for(principal, "m", reserved_tokens=10)
    assert [(check.name, check.limit) for check in checks] == [
        ("requests_per_minute", 60),
        ("tokens_per_minute", 600),
    ]


def test_checks_keys_share_tenant_hash_tag() -> None:
    limits = TenantLimits(requests_per_minute=5, concurrency=2, daily_tokens=100)
    checks = limiter().checks_for(Principal("acme", "k1", limits), "m", reserved_tokens=10)
    assert all("{acme}" in key for check in checks for key in check.keys)


def test_checks_none_without_limits() -> None:
    assert limiter().checks_for(Principal("t", "k", TenantLimits()), "m", 10) == []


def test_headers_report_tightest_window() -> None:
    principal = Principal(
        "t", "k", TenantLimits(requests_per_minute=100, models={"m": {"requests_per_minute": 10}})
    )
    checks = limiter().checks_for(principal, "m", reserved_tokens=1)
    state = [4, 1500, 7, 30_000]  # key window: 4 used; key-and-model window: 7 used
    headers = ratelimit_headers(checks, state)
    assert headers == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "3",
        "x-ratelimit-reset-requests": "30s",
    }
