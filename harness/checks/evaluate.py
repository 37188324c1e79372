"""Judge a scenario's checks: rules about individual responses, collected while the load runs.

Records stream past the checks one by one (a long run keeps none in memory), so each check
keeps only what it needs: counts, the first few offenders, and a sample of 429s to retry.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from harness.metrics.records import RequestRecord
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
RETRY_CANDIDATES = 1000
"""429s kept as candidates for the retry check; the sample is spread over them."""


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


@dataclass(frozen=True)
class RetryTarget:
    """How to send a request kind again: its URL per replica, body and headers."""

    urls: Sequence[str]
    bodies: Sequence[bytes]
    headers: Sequence[dict[str, str]]
    origin: float
    """Monotonic time that the records' times count from."""


@dataclass
class _Violations:
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, description: str) -> None:
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(description)


@dataclass
class _CacheGroup:
    """One tenant's one request kind: its first miss to complete, and its earliest-sent hit."""

    first_miss_end: float | None = None
    first_hit: tuple[float, int] | None = None
    """(sent, request index) of the hit sent first."""

    @property
    def hit_before_own_entry(self) -> bool:
        if self.first_hit is None:
            return False
        return self.first_miss_end is None or self.first_hit[0] < self.first_miss_end


class CheckCollector:
    """Keeps what the checks need from each record as the load runs."""

    def __init__(self, request_limited: set[str], token_limited: set[str], statuses: set[int]) -> None:
        self.request_limited = request_limited
        self.token_limited = token_limited
        self.statuses = statuses
        self.sent: Counter[str | None] = Counter()
        self.admitted: Counter[str | None] = Counter()
        self.header_checked = 0
        self.header_violations = _Violations()
        self.retry_candidates: list[RequestRecord] = []
        self.cache_groups: dict[tuple[str | None, int], _CacheGroup] = {}
        self.status_violations: dict[int, _Violations] = {}
        self.records = 0

    def add(self, record: RequestRecord) -> None:
        if record.warmup:
            return
        self.records += 1
        self.sent[record.tenant] += 1
        if record.ok:
            self.admitted[record.tenant] += 1
            self._add_cache(record)
        self._add_headers(record)
        if record.status in self.statuses:
            self.status_violations.setdefault(record.status, _Violations()).add(
                f"request {record.index}: {record.error or f'HTTP {record.status}'}"
            )

    def _add_headers(self, record: RequestRecord) -> None:
        headers = record.headers or {}
        expected: tuple[str, ...] = ()
        if record.ok and record.tenant in self.request_limited:
            expected += REQUEST_HEADERS
        if record.ok and record.tenant in self.token_limited:
            expected += TOKEN_HEADERS
        if record.status == 429:
            expected += ("retry-after",)
            retry_after = headers.get("retry-after")
            if retry_after is not None and not retry_after.isdigit():
                self.header_violations.add(
                    f"request {record.index}: Retry-After {retry_after!r} is not whole seconds"
                )
            elif retry_after is not None and len(self.retry_candidates) < RETRY_CANDIDATES:
                self.retry_candidates.append(record)
        if not expected:
            return
        self.header_checked += 1
        missing = [name for name in expected if name not in headers]
        if missing:
            self.header_violations.add(
                f"request {record.index} (HTTP {record.status}) lacks {', '.join(missing)}"
            )

    def _add_cache(self, record: RequestRecord) -> None:
        group = self.cache_groups.setdefault((record.tenant, record.kind), _CacheGroup())
        if record.cache == "miss" and record.end is not None:
            group.first_miss_end = min(record.end, group.first_miss_end or record.end)
        elif record.cache == "hit" and record.sent is not None:
            group.first_hit = min((record.sent, record.index), group.first_hit or (record.sent, record.index))


def collector_for(
    checks: Sequence[CheckSpec], request_limited: set[str], token_limited: set[str]
) -> CheckCollector:
    statuses = {status for check in checks if isinstance(check, NoStatusCheck) for status in check.statuses}
    return CheckCollector(request_limited, token_limited, statuses)


async def evaluate_checks(
    checks: Sequence[CheckSpec],
    collector: CheckCollector,
    retry: RetryTarget | None,
    gate: GateMode,
    lines: Sequence[int | None],
) -> list[CheckVerdict]:
    verdicts = []
    for check, line in zip(checks, lines, strict=True):
        passed, detail = await _judge(check, collector, retry)
        name = check.name or default_name(check)
        verdicts.append(CheckVerdict(name, check.type, passed, detail, check.gate or gate, line))
    return verdicts


def default_name(check: CheckSpec) -> str:
    if isinstance(check, AdmittedCheck):
        if check.min is not None and check.min == check.max:
            return f"admitted[{check.tenant}] == {check.min}"
        bounds = [
            f">= {check.min}" if check.min is not None else "",
            f"<= {check.max}" if check.max is not None else "",
        ]
        return f"admitted[{check.tenant}] " + " ".join(bound for bound in bounds if bound)
    if isinstance(check, NoStatusCheck):
        return "no status " + ", ".join(map(str, check.statuses))
    return check.type


async def _judge(check: CheckSpec, collector: CheckCollector, retry: RetryTarget | None) -> tuple[bool, str]:
    if isinstance(check, AdmittedCheck):
        return judge_admitted(check, collector)
    if isinstance(check, RateLimitHeadersCheck):
        return judge_ratelimit_headers(collector)
    if isinstance(check, RetryAfterCheck):
        return await judge_retry_after(check, collector, retry)
    if isinstance(check, CacheIsolationCheck):
        return judge_cache_isolation(collector)
    return judge_no_status(check, collector)


def judge_admitted(check: AdmittedCheck, collector: CheckCollector) -> tuple[bool, str]:
    admitted, sent = collector.admitted[check.tenant], collector.sent[check.tenant]
    too_few = check.min is not None and admitted < check.min
    too_many = check.max is not None and admitted > check.max
    return not (too_few or too_many), f"{admitted} of {sent} requests admitted"


def judge_ratelimit_headers(collector: CheckCollector) -> tuple[bool, str]:
    return _outcome(collector.header_violations, f"{collector.header_checked} responses had the headers")


def judge_cache_isolation(collector: CheckCollector) -> tuple[bool, str]:
    """A hit sent before its tenant's own first miss of that request completed came from another entry."""
    violations = _Violations()
    for (tenant, kind), group in sorted(collector.cache_groups.items(), key=lambda item: str(item[0])):
        if group.hit_before_own_entry:
            assert group.first_hit is not None
            index = group.first_hit[1]
            violations.add(
                f"tenant {tenant}, request kind {kind}: request {index} was a cache hit before this tenant "
                "had stored that response"
            )
    return _outcome(
        violations, f"{len(collector.cache_groups)} tenant and request pairs kept their own entries"
    )


def judge_no_status(check: NoStatusCheck, collector: CheckCollector) -> tuple[bool, str]:
    combined = _Violations()
    for status in check.statuses:
        found = collector.status_violations.get(status)
        if found is not None:
            combined.count += found.count
            combined.examples += found.examples[: MAX_EXAMPLES - len(combined.examples)]
    statuses = ", ".join(map(str, check.statuses))
    return _outcome(combined, f"none of {collector.records} responses had status {statuses}")


async def judge_retry_after(
    check: RetryAfterCheck, collector: CheckCollector, retry: RetryTarget | None
) -> tuple[bool, str]:
    candidates = collector.retry_candidates
    if not candidates:
        return False, "no 429 with Retry-After to retry"
    if retry is None:
        return False, "this engine cannot send requests again, so Retry-After cannot be checked"
    sample = candidates[:: max(1, len(candidates) // check.samples)][: check.samples]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=RETRY_TIMEOUT_S)) as session:
        statuses = await asyncio.gather(*(_retry(session, record, retry) for record in sample))
    violations = _Violations()
    for record, (waited_s, status) in zip(sample, statuses, strict=True):
        if not 200 <= status < 300:
            violations.add(
                f"request {record.index}: the retry {waited_s:g}s after its 429 got {_status_text(status)}"
            )
    return _outcome(violations, f"{len(sample)} retries after Retry-After all succeeded")


async def _retry(
    session: aiohttp.ClientSession, record: RequestRecord, retry: RetryTarget
) -> tuple[float, int]:
    """Send the request again once its Retry-After has passed; return the wait and the status."""
    assert record.end is not None and record.headers is not None
    retry_after_s = float(record.headers["retry-after"])
    delay = retry.origin + record.end + retry_after_s - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    url = retry.urls[record.replica]
    try:
        async with session.post(
            url, data=retry.bodies[record.kind], headers=retry.headers[record.kind]
        ) as response:
            await response.read()
            return retry_after_s, response.status
    except (aiohttp.ClientError, TimeoutError):
        return retry_after_s, 0


def _status_text(status: int) -> str:
    return "no response" if status == 0 else f"HTTP {status}"


def _outcome(violations: _Violations, success: str) -> tuple[bool, str]:
    if not violations.count:
        return True, success
    shown = "; ".join(violations.examples)
    more = (
        f" (and {violations.count - len(violations.examples)} more)"
        if violations.count > len(violations.examples)
        else ""
    )
    return False, f"{violations.count} violation(s): {shown}{more}"
