"""Process groups: readiness errors carry the log tail, and stop() ends every process of the group."""

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.stack.errors import StackError
from harness.stack.process import ManagedProcess, wait_until_ready
from tests.conftest import pid_alive


def test_wait_until_ready_timeout_shows_log(tmp_path: Path) -> None:
    process = ManagedProcess(
        "sleeper", ["sh", "-c", "echo warming up; exec sleep 30"], tmp_path / "sleeper.log"
    )
    process.start()
    try:
        time.sleep(0.2)
        with pytest.raises(StackError, match=r"not ready after 0\.3 s") as caught:
            wait_until_ready(process, lambda: False, "nothing", timeout_s=0.3)
        assert "warming up" in str(caught.value)
    finally:
        process.stop()
    assert process.pid is not None and not pid_alive(process.pid)


def test_wait_until_ready_reports_exit_code(tmp_path: Path) -> None:
    process = ManagedProcess("crasher", ["sh", "-c", "echo bad config >&2; exit 3"], tmp_path / "crasher.log")
    process.start()
    try:
        with pytest.raises(StackError, match="exited with code 3") as caught:
            wait_until_ready(process, lambda: False, "nothing", timeout_s=5)
        assert "bad config" in str(caught.value)
    finally:
        process.stop()


def test_stop_kills_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"sleep 30 & echo $! > {pid_file}; trap '' TERM; wait"
    process = ManagedProcess("parent", ["sh", "-c", script], tmp_path / "parent.log")
    process.start()
    deadline = time.monotonic() + 5
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.02)
    child = int(pid_file.read_text())
    process.stop(timeout_s=0.5)
    time.sleep(0.1)
    assert process.pid is not None and not pid_alive(process.pid)
    assert not pid_alive(child)


def test_children_die_with_killed_harness(tmp_path: Path) -> None:
    """A harness killed with SIGKILL cannot clean up; the kernel stops its services (PR_SET_PDEATHSIG)."""
    pid_file = tmp_path / "service.pid"
    code = (
        "import sys, time; from pathlib import Path; from harness.stack.process import ManagedProcess\n"
        f"p = ManagedProcess('svc', ['sleep', '30'], Path({str(tmp_path)!r}) / 'svc.log'); p.start()\n"
        f"Path({str(pid_file)!r}).write_text(str(p.pid)); time.sleep(30)\n"
    )
    harness = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 10
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the harness never started its service"
            time.sleep(0.02)
        service = int(pid_file.read_text())
        assert pid_alive(service)
    finally:
        harness.send_signal(signal.SIGKILL)
        harness.wait()
    deadline = time.monotonic() + 5
    while pid_alive(service) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pid_alive(service)


def test_child_of_worker_thread_outlives_thread(tmp_path: Path) -> None:
    """A service restarted from a short-lived thread must not die when that thread ends."""
    process = ManagedProcess("sleeper", ["sleep", "30"], tmp_path / "sleeper.log")
    worker = threading.Thread(target=process.start)
    worker.start()
    worker.join()
    try:
        time.sleep(0.3)
        assert process.is_running()
    finally:
        process.stop()
