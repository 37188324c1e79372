"""The built-in load engine: open and closed workload models on asyncio (uvloop) and a lean HTTP client.

Open model: each request is due at the time its schedule gives (constant or Poisson arrivals,
over ramps and steps), whatever happened to earlier requests. Its latency counts from that due
time, so a slow server cannot slow the schedule down and hide its own queueing (coordinated
omission). Closed model: each user sends its next request when its previous one
ends. Both stop at the end of the schedule or at the request cap, whichever comes first, then
wait for in-flight requests (bounded by the per-request timeout). Each finished record goes to
a sink at once, so a long run holds only its in-flight records.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvloop

from harness.load.client import PreparedRequest, send_request
from harness.load.http import HostPool
from harness.load.progress import ProgressSnapshot
from harness.load.schedule import arrival_times
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
    """Every record, when the run had no sink; empty otherwise."""
    started_at: datetime
    """Wall-clock time of the run's clock origin, for reports."""
    scheduled_s: float
    """How long the schedule ran: its full length, or less when the request cap was hit."""
    queued: int = 0
    """Open model: requests that waited for an in-flight slot (sent late, or dropped at the end)."""
    requests: int = 0
    """Records produced, warm-up included."""
    origin: float = 0.0
    """Monotonic time that the records' times count from (0 for the Locust engine, whose workers
    have clocks of their own)."""


ProgressCallback = Callable[[ProgressSnapshot], None]
RecordSink = Callable[[RequestRecord], None]


class _RunState:
    """One run's shared state: pools, prepared requests, counters for progress, the record sink."""

    def __init__(
        self,
        spec: LoadSpec,
        target: Target,
        sink: RecordSink,
        rate_per_s: float | None,
    ) -> None:
        self.spec = spec
        self.rate_per_s = rate_per_s
        self.prepared = prepare_requests(spec, target)
        self.pools = [HostPool(url) for url in target.base_urls]
        self.raw = [
            [pool.build_request(kind.path, kind.headers, kind.body) for kind in self.prepared]
            for pool in self.pools
        ]
        self.weights = [kind.weight for kind in spec.requests]
        self.sink = sink
        self.rng = random.Random(spec.seed)
        self.origin = time.monotonic()
        self.started = self.in_flight = self.completed = self.errors = self.queued = 0
        self.recent_e2e = LatencyHistogram()

    def new_record(self, intended_start: float) -> RequestRecord:
        index = self.started
        self.started += 1
        kind = 0 if len(self.prepared) == 1 else self.rng.choices(range(len(self.prepared)), self.weights)[0]
        return RequestRecord(
            index=index,
            kind=kind,
            replica=index % len(self.pools),
            stream=self.prepared[kind].stream,
            tenant=self.prepared[kind].tenant,
            intended_start=intended_start,
            warmup=intended_start < self.spec.warmup,
        )

    async def send(self, record: RequestRecord) -> None:
        self.in_flight += 1
        try:
            await send_request(
                self.pools[record.replica],
                self.raw[record.replica][record.kind],
                record.stream,
                record,
                self.origin + record.intended_start + self.spec.timeout,
                self.origin,
            )
        finally:
            self.in_flight -= 1
            self.finish(record)

    def finish(self, record: RequestRecord) -> None:
        self.completed += 1
        if record.is_error:
            self.errors += 1
        elif record.ok and record.e2e_latency is not None:
            self.recent_e2e.record(record.e2e_latency)
        self.sink(record)

    def close(self) -> None:
        for pool in self.pools:
            pool.close()


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


def run_load_blocking(
    spec: LoadSpec,
    target: Target,
    progress: ProgressCallback | None = None,
    sink: RecordSink | None = None,
    rate_per_s: float | None = None,
) -> LoadResult:
    """Run the load on a fresh uvloop event loop and return its result.

    uvloop wakes a timer within tens of microseconds where the default loop is often a
    millisecond late, and every late send is charged to the measured latency.
    ``rate_per_s`` replaces the schedule with that constant rate (a sweep's trial).
    """
    if spec.engine == "locust":
        from harness.load.locust_engine import run_locust

        return run_locust(spec, target, progress, sink, rate_per_s)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_load(spec, target, progress, sink, rate_per_s))


async def run_load(
    spec: LoadSpec,
    target: Target,
    progress: ProgressCallback | None = None,
    sink: RecordSink | None = None,
    rate_per_s: float | None = None,
) -> LoadResult:
    """Run the load described by ``spec`` against ``target``; each finished record goes to ``sink``."""
    if not target.base_urls:
        raise ValueError("the load target has no base URL")
    kept: list[RequestRecord] = []
    started_at = datetime.now(UTC)
    state = _RunState(spec, target, sink or kept.append, rate_per_s)
    reporter = _ProgressReporter(state, progress) if progress else None
    try:
        scheduled_s = await (_run_open(state) if spec.model == "open" else _run_closed(state))
    except asyncio.CancelledError:
        if reporter is not None and reporter.error is not None:
            raise reporter.error from None
        raise
    finally:
        if reporter is not None:
            reporter.cancel()
        state.close()
    if progress is not None:
        progress(_snapshot(state, final=True))
    return LoadResult(
        kept, started_at, scheduled_s, queued=state.queued, requests=state.started, origin=state.origin
    )


TIMER_SLACK_S = 0.0015
"""uvloop's timers count whole milliseconds and fire up to one late, so the last stretch is polled."""
POLL_ABOVE_S = 0.01
"""Only waits longer than this are polled at the end: at higher rates the loop wakes often anyway,
and polling would take the CPU the target needs."""


async def sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` on the monotonic clock.

    A long wait ends with a few polls that yield to the loop, so responses are still read and
    stamped while the generator waits.
    """
    delay = deadline - time.monotonic()
    if delay <= 0:
        return
    if delay <= POLL_ABOVE_S:
        await asyncio.sleep(delay)
        return
    await asyncio.sleep(delay - TIMER_SLACK_S)
    while time.monotonic() < deadline:  # noqa: ASYNC110 - polling is the point: no event marks the time
        await asyncio.sleep(0)


async def _run_open(state: _RunState) -> float:
    spec = state.spec
    schedule_s = spec.schedule_s
    deadline = state.origin + schedule_s
    slots = _Slots(spec.max_in_flight)
    due = arrival_times(spec, random.Random(spec.seed + 1), state.rate_per_s)
    last_intended = 0.0

    for intended in due:
        last_intended = intended
        await sleep_until(state.origin + intended)
        queued = slots.full
        if queued:
            state.queued += 1
            if not await slots.wait_for_free(deadline):
                _drop(state, intended, due)
                break
        record = state.new_record(intended)
        record.queued = queued
        slots.start(state.send(record))
    await slots.drain()
    return last_intended if state.started >= spec.max_requests else schedule_s


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


def _drop(state: _RunState, first: float, rest: Iterator[float]) -> None:
    """Record the requests the schedule still called for as dropped: the load ended before a slot freed."""
    for intended in (first, *rest):
        record = state.new_record(intended)
        record.queued = True
        record.error_class = ErrorClass.DROPPED
        record.error = f"not sent: {state.spec.max_in_flight} requests were in flight until the load ended"
        state.finish(record)


async def _run_closed(state: _RunState) -> float:
    spec = state.spec
    assert spec.users is not None
    deadline = state.origin + spec.schedule_s
    capped = False

    async def user() -> None:
        nonlocal capped
        while time.monotonic() < deadline:
            if state.started >= spec.max_requests:
                capped = True
                return
            await state.send(state.new_record(time.monotonic() - state.origin))

    await asyncio.gather(*(user() for _ in range(spec.users)))
    return (time.monotonic() - state.origin) if capped else spec.schedule_s


class _ProgressReporter:
    """A task that calls ``progress`` every PROGRESS_INTERVAL_S while the load runs.

    A callback that raises stops the load: the reporter keeps the exception and cancels the task
    that runs the load, which raises it in place of the cancellation.
    """

    def __init__(self, state: _RunState, progress: ProgressCallback) -> None:
        self.error: Exception | None = None
        self._load_task = asyncio.current_task()
        self._task = asyncio.create_task(self._report(state, progress))

    def cancel(self) -> None:
        self._task.cancel()

    async def _report(self, state: _RunState, progress: ProgressCallback) -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            try:
                progress(_snapshot(state, final=False))
            except Exception as exc:
                self.error = exc
                if self._load_task is not None:
                    self._load_task.cancel()
                return


def _snapshot(state: _RunState, final: bool) -> ProgressSnapshot:
    return ProgressSnapshot(
        elapsed_s=time.monotonic() - state.origin,
        duration_s=state.spec.schedule_s,
        started=state.started,
        completed=state.completed,
        in_flight=state.in_flight,
        errors=state.errors,
        p95_s=state.recent_e2e.percentile(95),
        final=final,
    )
