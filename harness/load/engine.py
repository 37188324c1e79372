"""The built-in load engine: open and closed workload models on asyncio and aiohttp.

Open model: request i is due at ``start + i / rate_per_s``, whatever happened to earlier
requests, and its latency counts from that due time, so a slow server cannot slow the
schedule down and hide its own queueing (coordinated omission). Closed model: each user
sends its next request when its previous one ends. Both stop at the scenario's duration or
request cap, whichever comes first, then wait for in-flight requests (bounded by the
per-request timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import uvloop

from harness.load.client import PreparedRequest, send_request
from harness.load.progress import ProgressSnapshot
from harness.metrics.histogram import LatencyHistogram
from harness.metrics.records import ErrorClass, RequestRecord
from harness.scenario.load import LoadSpec

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
PROGRESS_INTERVAL_S = 0.5


@dataclass(frozen=True)
class Target:
    """The load's destination: one base URL per gateway replica, and the API keys to send."""

    base_urls: Sequence[str]
    default_model: str
    api_keys: Mapping[str, str] = field(default_factory=dict)
    """API key by tenant name; a request kind picks its tenant's key, else the first one."""


@dataclass
class LoadResult:
    records: list[RequestRecord]
    started_at: datetime
    """Wall-clock time of the run's clock origin, for reports."""
    scheduled_s: float
    """How long the schedule ran: the scenario's duration, or less when the request cap was hit."""
    queued: int = 0
    """Open model: requests that waited for an in-flight slot (sent late, or dropped at the end)."""
    origin: float = 0.0
    """Monotonic time that the records' times count from."""
    prepared: list[PreparedRequest] = field(default_factory=list)
    """The request kinds as sent, so checks can send one again."""


ProgressCallback = Callable[[ProgressSnapshot], None]


@dataclass
class _RunState:
    spec: LoadSpec
    target: Target
    prepared: list[PreparedRequest]
    weights: list[float]
    session: aiohttp.ClientSession
    origin: float
    records: list[RequestRecord] = field(default_factory=list)
    in_flight: int = 0
    completed: int = 0
    errors: int = 0
    queued: int = 0
    recent_e2e: LatencyHistogram = field(default_factory=LatencyHistogram)
    chooser: random.Random = field(default_factory=lambda: random.Random(0))

    def new_record(self, intended_start: float) -> RequestRecord:
        index = len(self.records)
        kind = self.chooser.choices(range(len(self.prepared)), weights=self.weights)[0]
        record = RequestRecord(
            index=index,
            kind=kind,
            replica=index % len(self.target.base_urls),
            stream=self.prepared[kind].stream,
            tenant=self.prepared[kind].tenant,
            intended_start=intended_start,
        )
        self.records.append(record)
        return record

    async def send(self, record: RequestRecord) -> None:
        self.in_flight += 1
        try:
            await send_request(
                self.session,
                self.target.base_urls[record.replica],
                self.prepared[record.kind],
                record,
                self.origin + record.intended_start + self.spec.timeout,
                self.origin,
            )
        finally:
            self.in_flight -= 1
            self.completed += 1
            if record.is_error:
                self.errors += 1
            elif record.ok and record.e2e_latency is not None:
                self.recent_e2e.record(record.e2e_latency)


def prepare_requests(spec: LoadSpec, target: Target) -> list[PreparedRequest]:
    """Serialize each request kind's body and headers once."""
    default_tenant = next(iter(target.api_keys), None)
    prepared = []
    for kind in spec.requests:
        tenant = kind.tenant or default_tenant
        headers = {"content-type": "application/json"}
        if tenant is not None:
            if tenant not in target.api_keys:
                raise ValueError(
                    f"no API key for tenant {tenant!r}; known tenants: {', '.join(target.api_keys)}"
                )
            headers["authorization"] = f"Bearer {target.api_keys[tenant]}"
        body = json.dumps(kind.body(target.default_model, spec.stream)).encode()
        headers.update(kind.headers)
        prepared.append(PreparedRequest(CHAT_COMPLETIONS_PATH, body, headers, spec.stream, tenant))
    return prepared


def run_load_blocking(spec: LoadSpec, target: Target, progress: ProgressCallback | None = None) -> LoadResult:
    """Run the load on a fresh uvloop event loop and return its result.

    uvloop wakes a timer within tens of microseconds where the default loop is often a
    millisecond late, and every late send is charged to the measured latency.
    """
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_load(spec, target, progress))


async def run_load(spec: LoadSpec, target: Target, progress: ProgressCallback | None = None) -> LoadResult:
    """Run the load described by ``spec`` against ``target`` and return one record per request."""
    if not target.base_urls:
        raise ValueError("the load target has no base URL")
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, enable_cleanup_closed=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        started_at = datetime.now(UTC)
        state = _RunState(
            spec=spec,
            target=target,
            prepared=prepare_requests(spec, target),
            weights=[kind.weight for kind in spec.requests],
            session=session,
            origin=time.monotonic(),
        )
        reporter = asyncio.create_task(_report_progress(state, progress)) if progress else None
        try:
            schedule = _run_open if spec.model == "open" else _run_closed
            scheduled_s = await schedule(state)
        finally:
            if reporter is not None:
                reporter.cancel()
        if progress is not None:
            progress(_snapshot(state, final=True))
    return LoadResult(
        state.records,
        started_at,
        scheduled_s,
        queued=state.queued,
        origin=state.origin,
        prepared=state.prepared,
    )


async def sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` on the monotonic clock."""
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def _run_open(state: _RunState) -> float:
    spec = state.spec
    assert spec.rate_per_s is not None
    interval_s = 1.0 / spec.rate_per_s
    deadline = state.origin + spec.duration
    count = min(spec.max_requests, math.ceil(spec.duration * spec.rate_per_s))
    due = [index * interval_s for index in range(count) if index * interval_s < spec.duration]
    slots = _Slots(spec.max_in_flight)

    for position, intended in enumerate(due):
        await sleep_until(state.origin + intended)
        if slots.full:
            state.queued += 1
            if not await slots.wait_for_free(deadline):
                _drop(state, due[position:])
                break
        slots.start(state.send(state.new_record(intended)))
    await slots.drain()
    if len(due) == spec.max_requests:
        return min(spec.duration, spec.max_requests * interval_s)
    return spec.duration


class _Slots:
    """Requests in flight in the open model, at most ``limit`` at a time."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.tasks: set[asyncio.Task[None]] = set()
        self._freed = asyncio.Event()

    @property
    def full(self) -> bool:
        return len(self.tasks) >= self.limit

    def start(self, request: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(request)
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._freed.set()

    async def wait_for_free(self, deadline: float) -> bool:
        """Wait until a slot frees up; return False if none did before ``deadline``."""
        while self.full:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._freed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._freed.wait()
        return True

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*self.tasks)


def _drop(state: _RunState, intended_starts: Sequence[float]) -> None:
    """Record the requests the schedule still called for as dropped: the load ended before a slot freed."""
    for intended in intended_starts:
        record = state.new_record(intended)
        record.error_class = ErrorClass.DROPPED
        record.error = f"not sent: {state.spec.max_in_flight} requests were in flight until the load ended"
        state.completed += 1
        state.errors += 1


async def _run_closed(state: _RunState) -> float:
    spec = state.spec
    assert spec.users is not None
    deadline = state.origin + spec.duration
    capped = False

    async def user() -> None:
        nonlocal capped
        while time.monotonic() < deadline:
            if len(state.records) >= spec.max_requests:
                capped = True
                return
            await state.send(state.new_record(time.monotonic() - state.origin))

    await asyncio.gather(*(user() for _ in range(spec.users)))
    return (time.monotonic() - state.origin) if capped else spec.duration


async def _report_progress(state: _RunState, progress: ProgressCallback) -> None:
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL_S)
        progress(_snapshot(state, final=False))


def _snapshot(state: _RunState, final: bool) -> ProgressSnapshot:
    return ProgressSnapshot(
        elapsed_s=time.monotonic() - state.origin,
        duration_s=state.spec.duration,
        started=len(state.records),
        completed=state.completed,
        in_flight=state.in_flight,
        errors=state.errors,
        p95_s=state.recent_e2e.percentile(95),
        final=final,
    )
