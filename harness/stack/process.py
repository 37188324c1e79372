"""Child processes of a stack: each in its own process group, logged to a file, stopped as a group."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

import httpx

from harness.stack.errors import StackError

_PR_SET_PDEATHSIG = 1


_SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slogate-spawner")
"""Starts every child. Linux sends the parent-death signal when the *thread* that forked the child
exits, so a service restarted from a short-lived worker thread (a fault's undo) would stop with
it. This thread lives as long as the harness."""


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM to the child when the harness dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def bind_loopback_socket(port: int = 0) -> socket.socket:
    """Bind and listen on 127.0.0.1 (``port``, or one the kernel picks), ready to pass to a child.

    Passing the listening socket (see ``--fd`` of the slogate servers) avoids the race of
    picking a free port, closing it and hoping nobody takes it before the child binds.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def free_loopback_port() -> int:
    """Return a port on 127.0.0.1 that was free a moment ago, for servers that cannot take a socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ManagedProcess:
    """One service process of a stack.

    The process starts in a new session, so it is the leader of its own process group, a
    Ctrl-C in the terminal does not reach it, and ``stop`` can signal everything it spawned.
    Its stdout and stderr go to ``log_path``.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.pass_fds = tuple(pass_fds)
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> None:
        if self._popen is not None:
            raise StackError(f"{self.name} was already started (pid {self._popen.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")
        try:
            self._popen = _SPAWNER.submit(
                subprocess.Popen,
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=self.env,
                pass_fds=self.pass_fds,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            ).result()
        except OSError as exc:
            self._close_log()
            raise StackError(f"cannot start {self.name} ({self.argv[0]}): {exc}") from exc

    def is_running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def exit_code(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the whole process group; a group that is gone is ignored."""
        if self._popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, signum)

    def kill(self) -> None:
        """Kill the process group with SIGKILL, as a crash would, and reap the leader."""
        if self._popen is None:
            return
        self.signal(signal.SIGKILL)
        self._popen.wait()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after ``timeout_s``; reap the leader."""
        if self._popen is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self._popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self._popen.wait(timeout=timeout_s)
        # Children that outlived the leader are still in the group; the group id stays valid while any lives.
        self.signal(signal.SIGKILL)
        self._close_log()

    def log_tail(self, lines: int = 40) -> str:
        try:
            with self.log_path.open("r", encoding="utf-8", errors="replace") as log:
                return "".join(deque(log, maxlen=lines))
        except FileNotFoundError:
            return ""

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def wait_until_ready(
    process: ManagedProcess,
    probe: Callable[[], bool],
    what: str,
    timeout_s: float,
    interval_s: float = 0.05,
) -> None:
    """Call ``probe`` until it returns True; raise StackError with the log tail on exit or timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not process.is_running():
            raise StackError(
                f"{process.name} exited with code {process.exit_code()} before {what} was ready.\n"
                f"Last lines of {process.log_path}:\n{process.log_tail()}"
            )
        if probe():
            return
        if time.monotonic() >= deadline:
            raise StackError(
                f"{process.name} was not ready after {timeout_s:g} s (waited for {what}).\n"
                f"Last lines of {process.log_path}:\n{process.log_tail()}"
            )
        time.sleep(interval_s)


def http_probe(url: str, timeout_s: float = 1.0) -> Callable[[], bool]:
    """Return a probe that is True when ``url`` answers 200."""

    def probe() -> bool:
        try:
            return httpx.get(url, timeout=timeout_s).status_code == 200
        except httpx.HTTPError:
            return False

    return probe
