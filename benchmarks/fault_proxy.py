"""Measure what the embedded fault proxy adds with no toxics: round-trip latency and bulk throughput.

Runs a TCP echo server as a child process on 127.0.0.1, starts ``slogate fault-proxy`` with one
proxy in front of it, and compares the proxied path with a direct connection:

    .venv/bin/python benchmarks/fault_proxy.py [--round-trips 5000] [--bulk-mib 256] [--max-seconds 20]

Round trips send 64 bytes and wait for the echo, one at a time on one connection; percentiles use
slogate's nearest-rank method (harness.metrics.histogram). Bulk sends ``--bulk-mib`` MiB from one
thread while another reads the echo; MB/s counts payload bytes (1 MB = 10^6 bytes) over the whole
transfer. Every phase stops after its count or after ``--max-seconds``, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from harness.faults.client import FaultProxyClient
from harness.faults.launcher import start_fault_proxy
from harness.metrics.histogram import LatencyHistogram
from harness.stack.process import ManagedProcess, bind_loopback_socket

MESSAGE = b"x" * 64
BLOCK_SIZE = 1024 * 1024


class _EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


def serve_echo(fd: int) -> None:
    """Echo every connection on the inherited listening socket ``fd`` until killed."""
    import uvloop

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_EchoProtocol, sock=socket.socket(fileno=fd))
        await server.serve_forever()

    uvloop.run(serve())


def start_echo(log_dir: Path) -> tuple[ManagedProcess, tuple[str, int]]:
    sock = bind_loopback_socket()
    address = sock.getsockname()[:2]
    argv = [sys.executable, __file__, "--serve-echo-fd", str(sock.fileno())]
    process = ManagedProcess("echo", argv, log_dir / "echo.log", pass_fds=[sock.fileno()])
    process.start()
    sock.close()
    return process, address


def round_trips(address: tuple[str, int], count: int, max_seconds: float) -> list[float]:
    """Return the seconds of up to ``count`` sequential 64-byte echo round trips."""
    samples: list[float] = []
    with socket.create_connection(address, timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = time.monotonic() + max_seconds
        while len(samples) < count and time.monotonic() < deadline:
            started = time.perf_counter()
            sock.sendall(MESSAGE)
            received = 0
            while received < len(MESSAGE):
                received += len(sock.recv(len(MESSAGE) - received))
            samples.append(time.perf_counter() - started)
    return samples


def bulk_mb_s(address: tuple[str, int], total_bytes: int, max_seconds: float) -> float:
    """Send ``total_bytes`` through an echo and return the payload MB/s, counting only what came back."""
    block = os.urandom(BLOCK_SIZE)
    buffer = memoryview(bytearray(BLOCK_SIZE))
    stop = threading.Event()
    with socket.create_connection(address, timeout=10) as sock:

        def send() -> None:
            for _ in range(total_bytes // BLOCK_SIZE):
                if stop.is_set():
                    return
                sock.sendall(block)

        sender = threading.Thread(target=send)
        started = time.perf_counter()
        deadline = time.monotonic() + max_seconds
        sender.start()
        received = 0
        while received < total_bytes and time.monotonic() < deadline:
            count = sock.recv_into(buffer)
            if not count:
                break
            received += count
        elapsed = time.perf_counter() - started
        stop.set()
        sock.shutdown(socket.SHUT_RDWR)
        sender.join()
    return received / elapsed / 1e6


def percentile_us(samples: list[float], percentile: float) -> float:
    value = LatencyHistogram.of(samples).percentile(percentile)
    assert value is not None
    return value * 1e6


def machine() -> str:
    python = f"Python {platform.python_version()}"
    return f"{os.cpu_count()} CPUs ({platform.machine()}), {python}, {platform.system()} {platform.release()}"


def measure(args: argparse.Namespace, proxied: tuple[str, int], direct: tuple[str, int]) -> list[str]:
    rows = ["| path | round trips | p50 µs | p99 µs | bulk MB/s |", "|---|---|---|---|---|"]
    results: dict[str, tuple[list[float], float]] = {}
    for name, address in (("direct", direct), ("fault proxy, no toxics", proxied)):
        round_trips(address, 200, args.max_seconds)  # warm-up
        samples = round_trips(address, args.round_trips, args.max_seconds)
        throughput = bulk_mb_s(address, args.bulk_mib * 1024 * 1024, args.max_seconds)
        results[name] = (samples, throughput)
        p50, p99 = percentile_us(samples, 50), percentile_us(samples, 99)
        rows.append(f"| {name} | {len(samples)} | {p50:.0f} | {p99:.0f} | {throughput:.0f} |")

    (direct_samples, direct_mb_s), (proxy_samples, proxy_mb_s) = results.values()
    added = [percentile_us(proxy_samples, p) - percentile_us(direct_samples, p) for p in (50, 99)]
    share = f"{proxy_mb_s / direct_mb_s:.0%} of direct"
    rows.append(f"| added by the proxy | | {added[0]:+.0f} | {added[1]:+.0f} | {share} |")
    return rows


def run(args: argparse.Namespace, report: Callable[[str], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="fault-proxy-bench-") as workdir:
        echo, direct = start_echo(Path(workdir))
        server = start_fault_proxy(Path(workdir))
        try:
            client = FaultProxyClient(server.url)
            proxy = client.create_proxy("bench", f"{direct[0]}:{direct[1]}")
            report(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}")
            for row in measure(args, proxy.listen_address, direct):
                report(row)
        finally:
            server.stop()
            echo.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--round-trips", type=int, default=5000, help="round trips per path (default: 5000)")
    parser.add_argument("--bulk-mib", type=int, default=256, help="MiB echoed per path (default: 256)")
    parser.add_argument(
        "--max-seconds", type=float, default=20.0, help="time limit of each phase (default: 20)"
    )
    parser.add_argument("--serve-echo-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo_fd is not None:
        serve_echo(args.serve_echo_fd)
        return 0
    run(args, print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
