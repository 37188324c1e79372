"""Share one running stack between scenarios that ask for the same stack settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.scenario.stack import StackSpec
from harness.stack.base import Endpoints, StackBackend
from harness.stack.errors import StackError

BackendFactory = Callable[[StackSpec, Path], StackBackend]


class StackPool:
    """Keeps at most one stack running; a scenario with other settings replaces it.

    The plugin orders scenarios by stack settings, so each distinct stack starts once per run.
    A stack that failed to start is not retried for the same settings in the same run.
    """

    def __init__(self, backend_factory: BackendFactory, workdir: Callable[[], Path]) -> None:
        self._backend_factory = backend_factory
        self._workdir = workdir
        self._current_key: str | None = None
        self._current: StackBackend | None = None
        self._started = 0
        self._failures: dict[str, StackError] = {}

    @staticmethod
    def key(spec: StackSpec) -> str:
        return spec.model_dump_json()

    @property
    def current(self) -> StackBackend | None:
        return self._current

    def acquire(self, spec: StackSpec) -> tuple[StackBackend, Endpoints]:
        """Return a running stack with ``spec``'s settings, starting it when needed."""
        key = self.key(spec)
        if key in self._failures:
            raise StackError(f"this stack failed to start earlier in the run: {self._failures[key]}")
        if self._current is not None and (self._current_key != key or not self._current.is_healthy()):
            self.close()
        if self._current is None:
            self._started += 1
            backend = self._backend_factory(spec, self._workdir() / f"stack-{self._started}")
            try:
                backend.up()
            except StackError as exc:
                self._failures[key] = exc
                raise
            self._current, self._current_key = backend, key
        return self._current, self._current.up()

    def close(self) -> None:
        backend, self._current, self._current_key = self._current, None, None
        if backend is not None:
            backend.down()
