"""Apply a scenario's faults on schedule while its load runs, and undo every one of them at the end."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.scenario.faults import FaultSpec

ApplyFault = Callable[[FaultSpec], Callable[[], None]]
"""Perform a fault now and return the function that undoes it."""


@dataclass
class FaultEvent:
    """A fault as it happened: seconds from the start of the load."""

    spec: FaultSpec
    applied_at_s: float | None = None
    removed_at_s: float | None = None
    """When the undo began, at the planned end: recovery time counts from here, so a service that
    is slow to come back (a restart waiting for readiness) shows it."""
    restored_at_s: float | None = None
    """When the undo finished, for example when a restarted service was ready again."""
    error: str | None = None


async def run_faults(faults: Sequence[FaultSpec], apply: ApplyFault, origin: float) -> list[FaultEvent]:
    """Apply each fault at ``origin + at`` and undo it ``for`` later; undo what is applied even if cancelled.

    Process actions block (a restart waits for readiness), so they run in a worker thread and
    do not stall the load on the event loop.
    """
    events = [FaultEvent(spec) for spec in faults]
    undo: dict[int, Callable[[], None]] = {}

    async def one(position: int, event: FaultEvent) -> None:
        await _sleep_until(origin + event.spec.at)
        undo[position] = await asyncio.to_thread(apply, event.spec)
        event.applied_at_s = time.monotonic() - origin
        await _sleep_until(origin + event.spec.at + event.spec.duration)
        event.removed_at_s = time.monotonic() - origin
        await asyncio.to_thread(undo.pop(position))
        event.restored_at_s = time.monotonic() - origin

    try:
        async with asyncio.TaskGroup() as group:
            for position, event in enumerate(events):
                group.create_task(one(position, event))
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None
    finally:
        for position in list(undo):
            events[position].removed_at_s = time.monotonic() - origin
            with contextlib.suppress(Exception):
                undo.pop(position)()
            events[position].restored_at_s = time.monotonic() - origin
    return events


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


class FaultThread:
    """Runs a fault timeline on an event loop of its own in a thread, beside a load of any engine."""

    def __init__(self, faults: Sequence[FaultSpec], apply: ApplyFault) -> None:
        self.faults = faults
        self.apply = apply
        self.origin = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[list[FaultEvent]] | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slogate-faults", daemon=True)
        self._events: list[FaultEvent] = []
        self._error: BaseException | None = None

    def start(self) -> None:
        self.origin = time.monotonic()
        self._thread.start()
        self._started.wait()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._task = self._loop.create_task(run_faults(self.faults, self.apply, self.origin))
            self._started.set()
            self._events = self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:
            self._error = exc
        finally:
            self._started.set()
            self._loop.close()

    def finish(self, cancel: bool = False) -> list[FaultEvent]:
        """Wait for every fault to be undone (cancelling the rest when ``cancel``); return what happened."""
        if cancel and self._loop is not None and self._task is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._events
