"""Each policy scenario's gate fails when the gateway breaks the rule it guards.

A test-only ``sitecustomize`` (tests/data/break_gateway) patches the gateway processes that the
scenario's stack starts; the harness itself runs unpatched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PATCHES = REPO / "tests" / "data" / "break_gateway"


def run_broken(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, scenario: str, rule: str, scale: str
) -> dict[str, Any]:
    monkeypatch.setenv("PYTHONPATH", str(PATCHES))
    monkeypatch.setenv("SLOGATE_TEST_BREAK", rule)
    result = pytester.runpytest(
        str(REPO / "scenarios" / scenario),
        "-p", "no:cacheprovider",
        "-W", "ignore::pytest.PytestAssertRewriteWarning",
        "-o", "asyncio_default_fixture_loop_scope=function",
        "--reports-dir", "reports",
        "--run-id", "broken",
        "--duration-scale", scale,
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()[-3000:]
    summary = json.loads((pytester.path / "reports" / "broken" / "summary.json").read_text())
    (report,) = summary["scenarios"]
    assert report["verdict"] == "fail"
    return dict(report)


def failed(report: dict[str, Any]) -> dict[str, str]:
    items = [*report["slos"], *report["checks"]]
    return {item["name"]: item.get("detail", "") for item in items if item["status"] != "pass"}


def test_cache_gate_catches_no_hits(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    report = run_broken(pytester, monkeypatch, "cache-effectiveness.yaml", "never_hit", "0.2")
    assert set(failed(report)) == {"cache_hit_ratio >= 90%", "cache_latency_saved p50 >= 150ms"}


def test_isolation_gate_catches_shared_entries(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = run_broken(pytester, monkeypatch, "tenant-isolation.yaml", "key_without_tenant", "0.2")
    assert list(failed(report)) == ["cache_isolation"]
    assert "was a cache hit before this tenant had stored that response" in failed(report)["cache_isolation"]


def test_ratelimit_gate_catches_read_then_write(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = run_broken(pytester, monkeypatch, "ratelimit-exactness.yaml", "read_then_write", "1")
    details = failed(report)
    assert "admitted[burst] == 50" in details
    admitted = int(details["admitted[burst] == 50"].split(" of ")[0])
    assert admitted > 50


def test_outage_gate_catches_500s(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    report = run_broken(pytester, monkeypatch, "redis-outage.yaml", "fail_with_500", "0.3")
    details = failed(report)
    assert "no status 500, 502, 503, 504" in details
    assert "HTTP 500" in details["no status 500, 502, 503, 504"]


def test_fallback_gate_catches_missing_fallback(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = run_broken(pytester, monkeypatch, "upstream-fallback.yaml", "no_fallback", "0.2")
    details = failed(report)
    assert "error_rate <= 0%" in details
    assert "no status 500, 502, 503, 504" in details


def test_restart_gate_catches_cut_streams(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    report = run_broken(pytester, monkeypatch, "graceful-restart.yaml", "exit_on_sigterm", "0.3")
    assert "error_rate <= 0%" in failed(report)
