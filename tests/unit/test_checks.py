"""Scenario checks judged on hand-built request records."""

from __future__ import annotations

import asyncio
import contextlib
import time

from harness.checks.evaluate import (
    CheckCollector,
    judge_admitted,
    judge_cache_isolation,
    judge_no_status,
    judge_ratelimit_headers,
)
from harness.faults.timeline import run_faults
from harness.metrics.records import ErrorClass, RequestRecord
from harness.scenario.checks import AdmittedCheck, NoStatusCheck
from harness.scenario.faults import FaultSpec

LIMIT_HEADERS = {
    "x-ratelimit-limit-requests": "5",
    "x-ratelimit-remaining-requests": "4",
    "x-ratelimit-reset-requests": "1s",
}


def record(
    index: int,
    status: int = 200,
    tenant: str = "a",
    kind: int = 0,
    cache: str | None = None,
    sent: float = 0.0,
    end: float = 0.1,
    headers: dict[str, str] | None = None,
) -> RequestRecord:
    return RequestRecord(
        index=index,
        kind=kind,
        replica=0,
        stream=False,
        intended_start=sent,
        sent=sent,
        end=end,
        status=status,
        error_class=None
        if status == 200
        else (ErrorClass.RATE_LIMITED if status == 429 else ErrorClass.HTTP_STATUS),
        tenant=tenant,
        cache=cache,
        headers=headers,
    )


def collect(
    records: list[RequestRecord], limited: set[str] | None = None, statuses: set[int] | None = None
) -> CheckCollector:
    collector = CheckCollector(limited or set(), set(), statuses or set())
    for item in records:
        collector.add(item)
    return collector


def test_admitted_exact_bounds() -> None:
    records = [record(i) for i in range(50)] + [record(i, 429) for i in range(50, 200)]
    check = AdmittedCheck(type="admitted", tenant="a", min=50, max=50)
    assert judge_admitted(check, collect(records)) == (True, "50 of 200 requests admitted")


def test_admitted_over_limit_fails() -> None:
    records = [record(i) for i in range(51)]
    passed, detail = judge_admitted(AdmittedCheck(type="admitted", tenant="a", max=50), collect(records))
    assert not passed
    assert detail == "51 of 51 requests admitted"


def test_admitted_counts_only_its_tenant() -> None:
    records = [record(0, tenant="a"), record(1, tenant="b")]
    assert judge_admitted(AdmittedCheck(type="admitted", tenant="b", min=1, max=1), collect(records))[0]


def test_ratelimit_headers_present() -> None:
    records = [record(0, headers=LIMIT_HEADERS), record(1, 429, headers={"retry-after": "3"})]
    assert judge_ratelimit_headers(collect(records, {"a"}))[0]


def test_ratelimit_headers_missing_fail() -> None:
    records = [record(0, headers={"x-ratelimit-limit-requests": "5"}), record(1, 429, headers={})]
    passed, detail = judge_ratelimit_headers(collect(records, {"a"}))
    assert not passed
    assert "request 0 (HTTP 200) lacks x-ratelimit-remaining-requests, x-ratelimit-reset-requests" in detail
    assert "request 1 (HTTP 429) lacks retry-after" in detail


def test_ratelimit_headers_need_whole_seconds() -> None:
    records = [record(0, 429, headers={"retry-after": "1.5"})]
    passed, detail = judge_ratelimit_headers(collect(records, {"a"}))
    assert not passed
    assert "Retry-After '1.5' is not whole seconds" in detail


def test_cache_isolation_own_miss_first() -> None:
    records = [
        record(0, tenant="a", cache="miss", sent=0.0, end=0.3),
        record(1, tenant="b", cache="miss", sent=0.0, end=0.3),
        record(2, tenant="a", cache="hit", sent=0.4, end=0.41),
        record(3, tenant="b", cache="hit", sent=0.4, end=0.41),
    ]
    assert judge_cache_isolation(collect(records))[0]


def test_cache_isolation_catches_foreign_hit() -> None:
    records = [
        record(0, tenant="a", cache="miss", sent=0.0, end=0.3),
        record(1, tenant="b", cache="hit", sent=0.4, end=0.41),
    ]
    passed, detail = judge_cache_isolation(collect(records))
    assert not passed
    assert "tenant b, request kind 0: request 1 was a cache hit" in detail


def test_cache_isolation_hit_during_own_first_miss() -> None:
    records = [
        record(0, tenant="a", cache="miss", sent=0.0, end=0.3),
        record(1, tenant="a", cache="hit", sent=0.1, end=0.11),
    ]
    assert not judge_cache_isolation(collect(records))[0]


def test_no_status_lists_offenders() -> None:
    records = [record(0), record(1, 500), record(2, 503)]
    check = NoStatusCheck(type="no_status", statuses=[500, 503])
    passed, detail = judge_no_status(check, collect(records, statuses={500, 503}))
    assert not passed
    assert detail.startswith("2 violation(s): request 1")


def test_fault_timeline_applies_and_undoes() -> None:
    actions: list[tuple[float, str]] = []
    origin = time.monotonic()

    def apply(fault: FaultSpec):  # type: ignore[no-untyped-def]
        actions.append((time.monotonic() - origin, f"{fault.action} {fault.target}"))
        return lambda: actions.append((time.monotonic() - origin, f"undo {fault.target}"))

    spec = FaultSpec.model_validate({"at": "100ms", "for": "200ms", "target": "redis", "action": "kill"})
    (event,) = asyncio.run(run_faults([spec], apply, origin))
    assert [name for _, name in actions] == ["kill redis", "undo redis"]
    assert 0.09 < actions[0][0] < 0.2
    assert 0.29 < actions[1][0] < 0.4
    assert event.applied_at_s is not None and event.removed_at_s is not None


def test_fault_timeline_undoes_when_cancelled() -> None:
    undone: list[str] = []

    def apply(fault: FaultSpec):  # type: ignore[no-untyped-def]
        return lambda: undone.append(fault.target)

    spec = FaultSpec.model_validate({"at": "0s", "for": "10s", "target": "gateway.0", "action": "pause"})

    async def cancel_early() -> None:
        task = asyncio.create_task(run_faults([spec], apply, time.monotonic()))
        await asyncio.sleep(0.1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(cancel_early())
    assert undone == ["gateway.0"]
