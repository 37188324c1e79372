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
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp

from harness.load.client import PreparedRequest, client_timeout, send_request, sleep_until
from harness.load.progress import ProgressSnapshot
from harness.metrics.histogram import LatencyHistogram
from harness.metrics.records import RequestRecord
from harness.scenario.model import LoadSpec

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
PROGRESS_INTERVAL_S = 0.5


@dataclass(frozen=True)
class Target:
    """Where the load goes: one base URL per gateway replica, and the key to send."""

    base_urls: Sequence[str]
    default_model: str
    api_key: str | None = None


@dataclass
class LoadResult:
    records: list[RequestRecord]
    started_at: datetime
    """Wall-clock time of the run's clock origin, for reports."""
    scheduled_s: float
    """How long the schedule ran: the scenario's duration, or less when the request cap was hit."""
    queued: int = 0
    """Open model: requests that waited for an in-flight slot before they could be sent."""


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
                client_timeout(self.spec.timeout),
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
    import json

    headers = {"content-type": "application/json"}
    if target.api_key:
        headers["authorization"] = f"Bearer {target.api_key}"
    prepared = []
    for kind in spec.requests:
        body = json.dumps(kind.body(target.default_model, spec.stream)).encode()
        prepared.append(
            PreparedRequest(CHAT_COMPLETIONS_PATH, body, {**headers, **kind.headers}, spec.stream)
        )
    return prepared


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
    return LoadResult(state.records, started_at, scheduled_s, queued=state.queued)


async def _run_open(state: _RunState) -> float:
    spec = state.spec
    assert spec.rate_per_s is not None
    interval_s = 1.0 / spec.rate_per_s
    slots = asyncio.Semaphore(spec.max_in_flight)
    tasks: set[asyncio.Task[None]] = set()
    scheduled_s = spec.duration

    async def send_in_slot(record: RequestRecord) -> None:
        try:
            await state.send(record)
        finally:
            slots.release()

    for index in range(spec.max_requests):
        intended = index * interval_s
        if intended >= spec.duration:
            break
        await sleep_until(state.origin + intended)
        if slots.locked():
            state.queued += 1
        await slots.acquire()
        task = asyncio.create_task(send_in_slot(state.new_record(intended)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    else:
        scheduled_s = min(spec.duration, spec.max_requests * interval_s)
    if tasks:
        await asyncio.gather(*tasks)
    return scheduled_s


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
