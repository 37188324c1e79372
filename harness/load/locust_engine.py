"""The locust engine: runs a load section through Locust as subprocesses and reads back its records.

A headless Locust master and ``workers`` worker processes run on 127.0.0.1 with
``harness/load/locustfile.py``. Nothing of Locust is imported here, so gevent never patches
the harness's process. The workers append one JSON line per request. This side reads
those files while the run goes on, passes every record to the same sink as the built-in
engine, and reports progress from them.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from harness.load.engine import LoadResult, ProgressCallback, RecordSink, Target, prepare_requests
from harness.load.progress import ProgressSnapshot
from harness.metrics.histogram import LatencyHistogram
from harness.metrics.records import ErrorClass, RequestRecord, TokenSource
from harness.scenario.load import LoadSpec
from harness.stack.errors import StackError
from harness.stack.process import ManagedProcess, free_loopback_port

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
STARTUP_ALLOWANCE_S = 4.0
"""Time the processes get to start and connect before the schedule's first request is due."""
MAX_OPEN_USERS = 1000
POLL_INTERVAL_S = 0.5


class LocustRunError(RuntimeError):
    """The Locust processes failed or did not finish in time."""


def run_locust(
    spec: LoadSpec,
    target: Target,
    progress: ProgressCallback | None = None,
    sink: RecordSink | None = None,
    rate_per_s: float | None = None,
) -> LoadResult:
    """Run ``spec`` through a Locust master and ``spec.workers`` workers; return its result."""
    kept: list[RequestRecord] = []
    follower = _Follower(sink or kept.append)
    started_at = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="slogate-locust-") as folder:
        workdir = Path(folder)
        start_at = time.time() + STARTUP_ALLOWANCE_S + 0.5 * spec.workers
        config = _config(spec, target, rate_per_s, workdir, start_at)
        (workdir / "config.json").write_text(json.dumps(config), encoding="utf-8")
        processes = _start(spec, target, workdir)
        try:
            _follow(processes[0], workdir, follower, progress, spec, start_at)
        finally:
            for process in processes:
                process.stop(timeout_s=5)
            follower.close()
        if processes[0].exit_code() not in (0, None) and follower.count == 0:
            raise LocustRunError(f"the Locust master failed:\n{processes[0].log_tail()}")
    if progress is not None:
        progress(follower.snapshot(spec, time.time() - start_at, final=True))
    return LoadResult(kept, started_at, spec.schedule_s, queued=follower.queued, requests=follower.count)


def _config(
    spec: LoadSpec, target: Target, rate_per_s: float | None, workdir: Path, start_at: float
) -> dict[str, Any]:
    requests = [
        {
            "path": kind.path,
            "body": kind.body.decode(),
            "headers": dict(kind.headers),
            "stream": kind.stream,
            "tenant": kind.tenant,
            "weight": spec.requests[position].weight,
        }
        for position, kind in enumerate(prepare_requests(spec, target))
    ]
    return {
        "load": spec.model_dump(mode="json"),
        "base_urls": list(target.base_urls),
        "requests": requests,
        "rate_per_s": rate_per_s,
        "workers": spec.workers,
        "start_at": start_at,
        "output_dir": str(workdir),
    }


def _users(spec: LoadSpec) -> int:
    """Return the Locust users: the closed model's users, or the in-flight limit; one per worker at least."""
    users = spec.users if spec.users is not None else min(spec.max_in_flight, MAX_OPEN_USERS)
    return max(users, spec.workers)


def _start(spec: LoadSpec, target: Target, workdir: Path) -> list[ManagedProcess]:
    port = free_loopback_port()
    users = _users(spec)
    run_time_s = math.ceil(STARTUP_ALLOWANCE_S + 0.5 * spec.workers + spec.schedule_s + spec.timeout + 10)
    common = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--skip-log-setup"]
    env = {**os.environ, "SLOGATE_LOCUST_CONFIG": str(workdir / "config.json")}
    master_argv = [
        *common, "--master", "--headless", "--only-summary",
        "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
        "--expect-workers", str(spec.workers), "--expect-workers-max-wait", "30",
        "--users", str(users), "--spawn-rate", str(users),
        "--run-time", f"{run_time_s}s", "--stop-timeout", "5",
        "--host", target.base_urls[0],
    ]  # fmt: skip
    master = ManagedProcess("locust-master", master_argv, workdir / "master.log", env=env)
    workers = [
        ManagedProcess(
            f"locust-worker-{index}",
            [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            workdir / f"worker-{index}.log",
            env=env,
        )
        for index in range(spec.workers)
    ]
    started: list[ManagedProcess] = []
    try:
        for process in [master, *workers]:
            process.start()
            started.append(process)
    except StackError:
        for process in started:
            process.stop(timeout_s=5)
        raise
    return started


def _follow(
    master: ManagedProcess,
    workdir: Path,
    follower: _Follower,
    progress: ProgressCallback | None,
    spec: LoadSpec,
    start_at: float,
) -> None:
    """Read the workers' records until the master exits, reporting progress as they come."""
    deadline = start_at + spec.schedule_s + spec.timeout + 60
    while master.is_running():
        follower.read_new(workdir)
        if progress is not None:
            progress(follower.snapshot(spec, time.time() - start_at, final=False))
        if time.time() > deadline:
            message = "Locust did not finish by the end of the schedule and the request timeout"
            raise LocustRunError(f"{message}:\n{master.log_tail()}")
        time.sleep(POLL_INTERVAL_S)
    follower.read_new(workdir)


class _Follower:
    """Reads new complete lines of every worker's record file and passes each record on."""

    def __init__(self, sink: RecordSink) -> None:
        self.sink = sink
        self.handles: dict[Path, IO[str]] = {}
        self.pending: dict[Path, str] = {}
        self.count = self.errors = self.queued = 0
        self.e2e = LatencyHistogram()

    def read_new(self, workdir: Path) -> None:
        for path in sorted(workdir.glob("worker-*.jsonl")):
            handle = self.handles.get(path)
            if handle is None:
                handle = self.handles[path] = path.open("r", encoding="utf-8")
            text = self.pending.pop(path, "") + handle.read()
            lines = text.split("\n")
            if lines[-1]:
                self.pending[path] = lines[-1]
            for line in lines[:-1]:
                if line:
                    self._add(record_from_json(json.loads(line)))

    def _add(self, record: RequestRecord) -> None:
        self.count += 1
        self.queued += record.queued
        if record.is_error:
            self.errors += 1
        elif record.ok and record.e2e_latency is not None:
            self.e2e.record(record.e2e_latency)
        self.sink(record)

    def snapshot(self, spec: LoadSpec, elapsed_s: float, final: bool) -> ProgressSnapshot:
        return ProgressSnapshot(
            elapsed_s=max(elapsed_s, 0.0),
            duration_s=spec.schedule_s,
            started=self.count,
            completed=self.count,
            in_flight=0,
            errors=self.errors,
            p95_s=self.e2e.percentile(95),
            final=final,
        )

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def record_from_json(row: dict[str, Any]) -> RequestRecord:
    """Rebuild a record written by a Locust worker."""
    row = dict(row)
    row["error_class"] = ErrorClass(row["error_class"]) if row.get("error_class") else None
    row["token_source"] = TokenSource(row["token_source"]) if row.get("token_source") else None
    return RequestRecord(**row)
