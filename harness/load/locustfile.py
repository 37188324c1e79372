"""The Locust side of the locust engine: a FastHttpUser that follows slogate's load section.

Locust imports this file in its own master and worker processes (gevent-patched), never in
the harness's process. ``SLOGATE_LOCUST_CONFIG`` names a JSON file with the load section,
the target and the common start time. Each worker follows its share of the open-model
schedule (every N-th request) or runs its closed-model users, and appends one JSON line per
request to ``worker-<index>.jsonl`` in the output folder, with times relative to the common
start. TTFT is also reported to Locust as a custom request type, ``TTFT``.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from harness.load.responses import InvalidResponse, StreamReader, fail, read_completion, read_error
from harness.load.schedule import arrival_times
from harness.metrics.records import ErrorClass, RequestRecord
from harness.scenario.load import LoadSpec

CONFIG = json.loads(Path(os.environ["SLOGATE_LOCUST_CONFIG"]).read_text(encoding="utf-8"))
SPEC = LoadSpec.model_validate_json(json.dumps(CONFIG["load"]))
DONE_MESSAGE = "slogate_done"


class _WorkerShare:
    """This worker's part of the load: its schedule, its output file and its in-flight count."""

    def __init__(self, index: int, workers: int) -> None:
        self.index = index
        # A common start on the wall clock, turned into this process's monotonic clock.
        self.origin = time.monotonic() - (time.time() - CONFIG["start_at"])
        self.output = (Path(CONFIG["output_dir"]) / f"worker-{index}.jsonl").open("a", encoding="utf-8")
        self.due = self._share(index, workers) if SPEC.model == "open" else None
        self.in_flight = 0
        self.sequence = 0
        self.exhausted = False
        self.reported = False
        self.rng = random.Random(SPEC.seed * 1000 + index)

    @staticmethod
    def _share(index: int, workers: int) -> Iterator[tuple[int, float]]:
        schedule = arrival_times(SPEC, random.Random(SPEC.seed + 1), CONFIG.get("rate_per_s"))
        for number, intended in enumerate(schedule):
            if number % workers == index:
                yield number, intended

    def now(self) -> float:
        return time.monotonic() - float(self.origin)

    def write(self, record: RequestRecord) -> None:
        row = asdict(record)
        row["error_class"] = record.error_class.value if record.error_class else None
        row["token_source"] = record.token_source.value if record.token_source else None
        self.output.write(json.dumps(row) + "\n")
        self.output.flush()


SHARE: _WorkerShare | None = None


@events.init.add_listener  # type: ignore[untyped-decorator]
def _on_init(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        finished: set[str] = set()

        def on_done(msg: Any, **_: Any) -> None:
            finished.add(str(msg.data["worker"]))
            if len(finished) >= CONFIG["workers"]:
                gevent.spawn_later(0.2, runner.quit)

        runner.register_message(DONE_MESSAGE, on_done)


def _share(environment: Environment) -> _WorkerShare:
    global SHARE
    if SHARE is None:
        runner = environment.runner
        index = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        SHARE = _WorkerShare(index, CONFIG["workers"])
    return SHARE


class SlogateUser(FastHttpUser):
    """Sends the scenario's requests on its schedule and records each one as slogate does."""

    host = CONFIG["base_urls"][0]
    connection_timeout = SPEC.timeout
    network_timeout = SPEC.timeout

    @task
    def follow_schedule(self) -> None:
        share = _share(self.environment)
        while True:
            share.in_flight += 1  # counted from the pick, so a sleeping user keeps the worker busy
            try:
                picked = self._next(share)
                if picked is None:
                    break
                self._send(share, *picked)
            finally:
                share.in_flight -= 1
        self._report_done(share)
        raise StopUser()

    def _next(self, share: _WorkerShare) -> tuple[int, float, bool] | None:
        """Return the next request's number, intended start and whether it waited, or None at the end."""
        if share.due is None:
            if share.now() >= SPEC.schedule_s or share.sequence >= _closed_cap():
                share.exhausted = True
                return None
            share.sequence += 1
            return share.index + share.sequence * CONFIG["workers"], share.now(), False
        picked = next(share.due, None)
        if picked is None:
            share.exhausted = True
            return None
        number, intended = picked
        delay = intended - share.now()
        if delay > 0:
            gevent.sleep(delay)
        return number, intended, delay < -0.001

    def _send(self, share: _WorkerShare, number: int, intended: float, queued: bool) -> None:
        kinds = CONFIG["requests"]
        kind = 0 if len(kinds) == 1 else share.rng.choices(range(len(kinds)), [k["weight"] for k in kinds])[0]
        replica = number % len(CONFIG["base_urls"])
        record = RequestRecord(
            index=number,
            kind=kind,
            replica=replica,
            stream=kinds[kind]["stream"],
            tenant=kinds[kind]["tenant"],
            intended_start=intended,
            warmup=intended < SPEC.warmup,
            queued=queued,
        )
        if queued and share.now() >= SPEC.schedule_s:
            fail(record, ErrorClass.DROPPED, "not sent: every user was busy until the load ended")
        else:
            self._exchange(share, record, kinds[kind], CONFIG["base_urls"][replica])
        share.write(record)

    def _exchange(
        self, share: _WorkerShare, record: RequestRecord, kind: dict[str, Any], base_url: str
    ) -> None:
        remaining = record.intended_start + SPEC.timeout - share.now()
        if remaining <= 0:
            fail(
                record, ErrorClass.TIMEOUT, "not sent: the request timeout passed while it waited to be sent"
            )
            record.end = share.now()
            return
        record.sent = share.now()
        try:
            with gevent.Timeout(remaining):
                self._post(share, record, kind, base_url)
        except gevent.Timeout:
            fail(record, ErrorClass.TIMEOUT, "no complete response within the request timeout")
        except InvalidResponse as exc:
            fail(record, ErrorClass.INVALID_RESPONSE, str(exc))
        except (ConnectionError, OSError) as exc:
            error_class = ErrorClass.CONNECT if record.first_byte is None else ErrorClass.TRUNCATED
            fail(record, error_class, f"{type(exc).__name__}: {exc}")
        if record.end is None:
            record.end = share.now()

    def _post(self, share: _WorkerShare, record: RequestRecord, kind: dict[str, Any], base_url: str) -> None:
        headers = {**kind["headers"], "accept-encoding": "identity"}
        with self.client.request(
            "POST",
            base_url + kind["path"],
            data=kind["body"].encode(),
            headers=headers,
            stream=True,
            catch_response=True,
            name=f"kind {record.kind}",
        ) as response:
            if response.status_code == 0:
                error = getattr(response, "error", None)
                raise ConnectionError(str(error) if error else "no response")
            record.first_byte = share.now()
            record.status = response.status_code
            record.cache = response.headers.get("x-cache") if response.headers else None
            record.upstream = response.headers.get("x-upstream") if response.headers else None
            self._read_body(share, record, response)
            response.success()
        if record.ttft is not None:
            events.request.fire(  # type: ignore[no-untyped-call]
                request_type="TTFT",
                name=f"kind {record.kind}",
                response_time=record.ttft * 1000,
                response_length=0,
                exception=None,
                context={},
            )

    @staticmethod
    def _read_body(share: _WorkerShare, record: RequestRecord, response: Any) -> None:
        raw = response._response  # geventhttpclient's response: reads lines as they arrive
        if record.status != 200 or not record.stream:
            body = raw.read()
            record.end = share.now()
            if record.status != 200:
                read_error(record.status or 0, body, record)
            else:
                read_completion(body, record)
            return
        reader = StreamReader(record)
        while line := raw.readline(b"\n"):
            if not reader.feed(line, share.now()):
                break
        record.end = share.now()
        reader.finish()

    def _report_done(self, share: _WorkerShare) -> None:
        """Tell the master once this worker's share is sent and answered, so the run ends early."""
        while share.in_flight:
            gevent.sleep(0.05)
        if share.exhausted and not share.reported:
            share.reported = True
            share.output.close()
            runner = self.environment.runner
            if isinstance(runner, WorkerRunner):
                runner.send_message(DONE_MESSAGE, {"worker": share.index})


def _closed_cap() -> int:
    """Requests each worker may start in the closed model: its share of max_requests."""
    return max(1, SPEC.max_requests // int(CONFIG["workers"]))
