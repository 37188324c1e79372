"""Judge a scenario's checks: rules about individual responses, evaluated after the load."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from harness.load.client import PreparedRequest, send_request
from harness.metrics.records import ErrorClass, RequestRecord
from harness.scenario.base import GateMode
from harness.scenario.checks import (
    AdmittedCheck,
    CacheIsolationCheck,
    CheckSpec,
    NoStatusCheck,
    RateLimitHeadersCheck,
    RetryAfterCheck,
)

REQUEST_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
)
TOKEN_HEADERS = ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens")
RETRY_TIMEOUT_S = 30.0
MAX_EXAMPLES = 3


@dataclass(frozen=True)
class CheckVerdict:
    name: str
    type: str
    passed: bool
    detail: str
    """What was observed, and for a failure which responses broke the rule."""
    gate: GateMode
    line: int | None

    @property
    def blocks(self) -> bool:
        return not self.passed and self.gate == "block"


@dataclass
class CheckContext:
    """What the checks look at: the records, and how to send a request again for retry checks."""

    records: Sequence[RequestRecord]
    prepared: Sequence[PreparedRequest]
    base_urls: Sequence[str]
    origin: float
    """Monotonic time the records' times count from."""
    request_limited_tenants: set[str] = field(default_factory=set)
    token_limited_tenants: set[str] = field(default_factory=set)


async def evaluate_checks(
    checks: Sequence[CheckSpec], context: CheckContext, gate: GateMode, lines: Sequence[int | None]
) -> list[CheckVerdict]:
    verdicts = []
    for check, line in zip(checks, lines, strict=True):
        passed, detail = await _judge(check, context)
        name = check.name or default_name(check)
        verdicts.append(CheckVerdict(name, check.type, passed, detail, check.gate or gate, line))
    return verdicts


def default_name(check: CheckSpec) -> str:
    if isinstance(check, AdmittedCheck):
        bounds = [
            f">= {check.min}" if check.min is not None else "",
            f"<= {check.max}" if check.max is not None else "",
        ]
        if check.min is not None and check.min == check.max:
            bounds = [f"== {check.min}"]
        return f"admitted[{check.tenant}] " + " ".join(bound for bound in bounds if bound)
    if isinstance(check, NoStatusCheck):
        return "no status " + ", ".join(map(str, check.statuses))
    return check.type


async def _judge(check: CheckSpec, context: CheckContext) -> tuple[bool, str]:
    if isinstance(check, AdmittedCheck):
        return judge_admitted(check, context.records)
    if isinstance(check, RateLimitHeadersCheck):
        return judge_ratelimit_headers(context)
    if isinstance(check, RetryAfterCheck):
        return await judge_retry_after(check, context)
    if isinstance(check, CacheIsolationCheck):
        return judge_cache_isolation(context.records)
    return judge_no_status(check, context.records)


def judge_admitted(check: AdmittedCheck, records: Sequence[RequestRecord]) -> tuple[bool, str]:
    admitted = sum(1 for record in records if record.tenant == check.tenant and record.ok)
    sent = sum(1 for record in records if record.tenant == check.tenant)
    too_few = check.min is not None and admitted < check.min
    too_many = check.max is not None and admitted > check.max
    return not (too_few or too_many), f"{admitted} of {sent} requests admitted"


def judge_ratelimit_headers(context: CheckContext) -> tuple[bool, str]:
    problems: list[str] = []
    judged = 0
    for record in context.records:
        headers = record.headers or {}
        expected: tuple[str, ...] = ()
        if record.ok and record.tenant in context.request_limited_tenants:
            expected += REQUEST_HEADERS
        if record.ok and record.tenant in context.token_limited_tenants:
            expected += TOKEN_HEADERS
        if record.status == 429:
            expected += ("retry-after",)
            if not headers.get("retry-after", "").isdigit() and "retry-after" in headers:
                problems.append(
                    f"request {record.index}: Retry-After {headers['retry-after']!r} is not whole seconds"
                )
        if not expected:
            continue
        judged += 1
        missing = [name for name in expected if name not in headers]
        if missing:
            problems.append(f"request {record.index} (HTTP {record.status}) lacks {', '.join(missing)}")
    return _outcome(problems, f"{judged} responses had the headers")


async def judge_retry_after(check: RetryAfterCheck, context: CheckContext) -> tuple[bool, str]:
    rejected = [
        r
        for r in context.records
        if r.status == 429 and r.end is not None and (r.headers or {}).get("retry-after")
    ]
    if not rejected:
        return False, "no 429 with Retry-After to retry"
    sample = rejected[:: max(1, len(rejected) // check.samples)][: check.samples]
    async with aiohttp.ClientSession() as session:
        retries = await asyncio.gather(*(_retry(session, record, context) for record in sample))
    problems = [
        f"request {record.index}: the retry {retry.retry_after_s:g}s later got {_describe(retry.record)}"
        for record, retry in zip(sample, retries, strict=True)
        if not retry.record.ok
    ]
    return _outcome(problems, f"{len(sample)} retries after Retry-After all succeeded")


@dataclass
class _Retry:
    record: RequestRecord
    retry_after_s: float


async def _retry(session: aiohttp.ClientSession, original: RequestRecord, context: CheckContext) -> _Retry:
    assert original.end is not None and original.headers is not None
    retry_after_s = float(original.headers["retry-after"])
    await _sleep_until(context.origin + original.end + retry_after_s)
    retry = RequestRecord(
        index=original.index,
        kind=original.kind,
        replica=original.replica,
        stream=original.stream,
        intended_start=time.monotonic() - context.origin,
        tenant=original.tenant,
    )
    deadline = time.monotonic() + RETRY_TIMEOUT_S
    await send_request(
        session,
        context.base_urls[original.replica],
        context.prepared[original.kind],
        retry,
        deadline,
        context.origin,
    )
    return _Retry(retry, retry_after_s)


def judge_cache_isolation(records: Sequence[RequestRecord]) -> tuple[bool, str]:
    """A hit sent before its tenant's own first miss of that request completed came from another entry."""
    groups: dict[tuple[str | None, int], list[RequestRecord]] = defaultdict(list)
    for record in records:
        if record.ok:
            groups[(record.tenant, record.kind)].append(record)
    problems = []
    for (tenant, kind), group in sorted(groups.items(), key=lambda item: str(item[0])):
        stored = min((r.end for r in group if r.cache == "miss" and r.end is not None), default=None)
        early = [
            r
            for r in group
            if r.cache == "hit" and r.sent is not None and (stored is None or r.sent < stored)
        ]
        if early:
            problems.append(
                f"tenant {tenant}, request kind {kind}: request {early[0].index} was a cache hit before "
                "this tenant had stored that response"
            )
    return _outcome(problems, f"{len(groups)} tenant and request pairs kept their own entries")


def judge_no_status(check: NoStatusCheck, records: Sequence[RequestRecord]) -> tuple[bool, str]:
    forbidden = set(check.statuses)
    hits = [record for record in records if record.status in forbidden]
    problems = [f"request {record.index}: {_describe(record)}" for record in hits]
    return _outcome(
        problems, f"none of {len(records)} responses had status {', '.join(map(str, check.statuses))}"
    )


def _outcome(problems: list[str], success: str) -> tuple[bool, str]:
    if not problems:
        return True, success
    shown = "; ".join(problems[:MAX_EXAMPLES])
    more = f" (and {len(problems) - MAX_EXAMPLES} more)" if len(problems) > MAX_EXAMPLES else ""
    return False, f"{len(problems)} violation(s): {shown}{more}"


def _describe(record: RequestRecord) -> str:
    if record.error_class is ErrorClass.RATE_LIMITED or record.error:
        return record.error or f"HTTP {record.status}"
    return f"HTTP {record.status}"


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
