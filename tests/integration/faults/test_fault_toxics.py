"""Each toxic on real loopback connections through the embedded fault proxy, with a stated tolerance.

A delay is never early, so every sample must meet the lower bound. A busy machine can only add
time, so where a test takes several samples, the upper bound (the delay plus 10 ms) applies to
the median or the 90th percentile. One scheduling stall then does not fail the test, but a wrong
delay does.
"""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest

from harness.faults.client import FaultProxyClient
from harness.faults.launcher import RunningFaultProxy
from tests.integration.faults.conftest import ProxyFactory
from tests.integration.faults.tcp import (
    connect,
    listener_address,
    recv_exactly,
    recv_until_eof,
    refuses_connections,
    round_trip_s,
)

MS = 1e-3
TIMER_SLACK_S = 1 * MS
"""How early a delay may look: the proxy timestamps a chunk at the start of an event loop iteration."""


def percentile_90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10, method="inclusive")[-1]


def test_latency_with_jitter_stays_in_bounds(
    make_proxy: ProxyFactory, fault_client: FaultProxyClient
) -> None:
    proxy = make_proxy()
    fault_client.add_toxic(proxy.name, "latency", latency=50, jitter=20)
    with connect(proxy) as sock:
        samples = [round_trip_s(sock) for _ in range(20)]
    assert min(samples) >= (50 - 20) * MS - TIMER_SLACK_S, samples
    assert percentile_90(samples) <= (50 + 20 + 10) * MS, samples
    assert max(samples) - min(samples) >= 5 * MS, f"jitter did not vary the delay: {samples}"


def test_latency_stacked_toxics_add_up(make_proxy: ProxyFactory, fault_client: FaultProxyClient) -> None:
    proxy = make_proxy()
    fault_client.add_toxic(proxy.name, "latency", name="first", latency=40)
    fault_client.add_toxic(proxy.name, "latency", name="second", latency=60)
    with connect(proxy) as sock:
        samples = [round_trip_s(sock) for _ in range(5)]
    assert min(samples) >= 100 * MS - TIMER_SLACK_S, samples
    assert statistics.median(samples) <= 110 * MS, samples


def test_latency_upstream_stream_delays_requests(
    make_proxy: ProxyFactory, fault_client: FaultProxyClient
) -> None:
    proxy = make_proxy()
    fault_client.add_toxic(proxy.name, "latency", stream="upstream", latency=80)
    with connect(proxy) as sock:
        samples = [round_trip_s(sock) for _ in range(5)]
    assert min(samples) >= 80 * MS - TIMER_SLACK_S, samples
    assert statistics.median(samples) <= 90 * MS, samples


def test_latency_keeps_bulk_throughput(make_proxy: ProxyFactory, fault_client: FaultProxyClient) -> None:
    """A 100 ms latency delays each chunk but must not cap throughput: chunks wait side by side."""
    proxy = make_proxy()
    fault_client.add_toxic(proxy.name, "latency", latency=100)
    total = 192 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    buffer = memoryview(bytearray(1024 * 1024))
    with connect(proxy) as sock:

        def send_all() -> None:
            for _ in range(total // len(block)):
                sock.sendall(block)

        sender = threading.Thread(target=send_all)
        started = time.perf_counter()
        sender.start()
        received = 0
        while received < total:
            count = sock.recv_into(buffer)
            assert count, f"the proxy closed the connection after {received} bytes"
            received += count
        elapsed = time.perf_counter() - started
        sender.join()
    throughput_mb_s = total / elapsed / 1e6
    assert throughput_mb_s >= 100, f"{throughput_mb_s:.0f} MB/s in {elapsed:.2f} s"


def test_bandwidth_paces_transfer(make_proxy: ProxyFactory, fault_client: FaultProxyClient) -> None:
    proxy = make_proxy()
    fault_client.add_toxic(proxy.name, "bandwidth", rate=1000)
    payload = os.urandom(480_000)
    with connect(proxy) as sock:
        started = time.perf_counter()
        sock.sendall(payload)
        echoed = recv_exactly(sock, len(payload))
        elapsed = time.perf_counter() - started
    assert echoed == payload
    assert 0.48 * 0.9 <= elapsed <= 0.48 * 1.1, f"480 KB at 1000 KB/s took {elapsed:.3f} s"


def test_timeout_closes_after_delay(make_proxy: ProxyFactory, fault_client: FaultProxyClient) -> None:
    proxy = make_proxy()
    fault_client.add_toxic(proxy.name, "timeout", timeout=300)
    started = time.perf_counter()
    with connect(proxy) as sock:
        sock.sendall(b"ping")
        received = recv_until_eof(sock)
        elapsed = time.perf_counter() - started
    assert received == b"", "the timeout toxic let data through"
    assert 300 * MS - TIMER_SLACK_S <= elapsed <= 400 * MS


def test_timeout_zero_holds_connection(make_proxy: ProxyFactory, fault_client: FaultProxyClient) -> None:
    proxy = make_proxy()
    fault_client.add_toxic(proxy.name, "timeout", timeout=0)
    with connect(proxy, timeout_s=0.5) as sock:
        sock.sendall(b"ping")
        with pytest.raises(TimeoutError):
            sock.recv(16)


def test_timeout_removal_closes_both_sides(
    make_proxy: ProxyFactory, fault_client: FaultProxyClient, upstream_listener: socket.socket
) -> None:
    proxy = make_proxy(upstream=listener_address(upstream_listener))
    fault_client.add_toxic(proxy.name, "timeout", timeout=0)
    with connect(proxy, timeout_s=1.0) as client:
        server_side, _ = upstream_listener.accept()
        with server_side:
            server_side.settimeout(1.0)
            client.sendall(b"request")
            assert recv_exactly(server_side, 7) == b"request", "the downstream toxic held the request"
            server_side.sendall(b"response")
            fault_client.remove_toxic(proxy.name, "timeout_downstream")
            started = time.perf_counter()
            assert recv_until_eof(client) == b"", "the client got data the timeout toxic swallowed"
            assert recv_until_eof(server_side) == b""
            elapsed = time.perf_counter() - started
    assert elapsed <= 1.0


def test_reset_peer_resets_connection(make_proxy: ProxyFactory, fault_client: FaultProxyClient) -> None:
    proxy = make_proxy()
    fault_client.add_toxic(proxy.name, "reset_peer", timeout=0)
    with connect(proxy) as sock:
        sock.sendall(b"ping")
        with pytest.raises(ConnectionResetError):
            sock.recv(16)


def test_reset_peer_waits_for_timeout(make_proxy: ProxyFactory, fault_client: FaultProxyClient) -> None:
    proxy = make_proxy()
    fault_client.add_toxic(proxy.name, "reset_peer", timeout=200)
    with connect(proxy) as sock:
        started = time.perf_counter()
        sock.sendall(b"ping")
        with pytest.raises(ConnectionResetError):
            sock.recv(16)
        elapsed = time.perf_counter() - started
    assert 200 * MS - TIMER_SLACK_S <= elapsed <= 300 * MS


def test_slicer_splits_into_many_reads(make_proxy: ProxyFactory, fault_client: FaultProxyClient) -> None:
    proxy = make_proxy()
    fault_client.add_toxic(proxy.name, "slicer", average_size=64, size_variation=16, delay=200)
    payload = os.urandom(4096)
    reads = []
    with connect(proxy) as sock:
        sock.sendall(payload)
        while sum(map(len, reads)) < len(payload):
            part = sock.recv(65536)
            assert part, "the proxy closed the connection early"
            reads.append(part)
    assert b"".join(reads) == payload
    assert len(reads) >= 16, f"4096 bytes in slices of about 64 bytes arrived in {len(reads)} reads"


def test_limit_data_closes_after_bytes(make_proxy: ProxyFactory, fault_client: FaultProxyClient) -> None:
    proxy = make_proxy()
    fault_client.add_toxic(proxy.name, "limit_data", bytes=1000)
    payload = os.urandom(5000)
    with connect(proxy) as sock:
        sock.sendall(payload)
        received = recv_until_eof(sock)
    assert len(received) == 1000
    assert received == payload[:1000]


def test_slow_close_delays_eof(
    make_proxy: ProxyFactory, fault_client: FaultProxyClient, upstream_listener: socket.socket
) -> None:
    proxy = make_proxy(upstream=listener_address(upstream_listener))
    fault_client.add_toxic(proxy.name, "slow_close", delay=300)
    with connect(proxy) as client:
        server_side, _ = upstream_listener.accept()
        server_side.sendall(b"bye")
        started = time.perf_counter()
        server_side.close()
        received = recv_until_eof(client)
        elapsed = time.perf_counter() - started
    assert received == b"bye"
    assert 300 * MS - TIMER_SLACK_S <= elapsed <= 400 * MS


def test_toxicity_half_hits_about_half(make_proxy: ProxyFactory, fault_client: FaultProxyClient) -> None:
    """A limit_data of 0 bytes closes a connection it hits at the first reply, so each hit is visible."""
    proxy = make_proxy()
    fault_client.add_toxic(proxy.name, "limit_data", toxicity=0.5, bytes=0)
    hits = 0
    for _ in range(200):
        with connect(proxy) as sock:
            sock.sendall(b"ping")
            hits += recv_exactly(sock, 4) == b""
    assert 70 <= hits <= 130, f"toxicity 0.5 hit {hits} of 200 connections"


def test_toxic_added_to_live_connection(make_proxy: ProxyFactory, fault_client: FaultProxyClient) -> None:
    proxy = make_proxy()
    with connect(proxy) as sock:
        before = round_trip_s(sock)
        fault_client.add_toxic(proxy.name, "latency", latency=100)
        during = round_trip_s(sock)
        fault_client.remove_toxic(proxy.name, "latency_downstream")
        after = round_trip_s(sock)
    assert before < 50 * MS
    assert during >= 100 * MS - TIMER_SLACK_S
    assert after < 50 * MS


def test_toxic_update_applies_to_live_connection(
    make_proxy: ProxyFactory, fault_client: FaultProxyClient
) -> None:
    proxy = make_proxy()
    fault_client.add_toxic(proxy.name, "latency", latency=200)
    with connect(proxy) as sock:
        fault_client.update_toxic(proxy.name, "latency_downstream", latency=20)
        samples = [round_trip_s(sock) for _ in range(5)]
    assert min(samples) >= 20 * MS - TIMER_SLACK_S, samples
    assert statistics.median(samples) <= 30 * MS, samples


def test_toxicity_update_stops_live_toxic(make_proxy: ProxyFactory, fault_client: FaultProxyClient) -> None:
    proxy = make_proxy()
    fault_client.add_toxic(proxy.name, "latency", latency=200)
    with connect(proxy) as sock:
        assert round_trip_s(sock) >= 200 * MS - TIMER_SLACK_S
        fault_client.update_toxic(proxy.name, "latency_downstream", toxicity=0.0)
        assert round_trip_s(sock) < 50 * MS


def test_limit_data_counts_across_updates(make_proxy: ProxyFactory, fault_client: FaultProxyClient) -> None:
    proxy = make_proxy()
    fault_client.add_toxic(proxy.name, "limit_data", bytes=1000)
    with connect(proxy) as sock:
        round_trip_s(sock, b"a" * 600)
        fault_client.update_toxic(proxy.name, "limit_data_downstream", bytes=1500)
        sock.sendall(b"b" * 1200)
        received = recv_until_eof(sock)
    assert received == b"b" * 900


def test_disabled_proxy_closes_live_connections(
    make_proxy: ProxyFactory, fault_client: FaultProxyClient
) -> None:
    proxy = make_proxy()
    with connect(proxy) as sock:
        round_trip_s(sock)
        fault_client.set_enabled(proxy.name, False)
        assert recv_until_eof(sock) == b""
    assert refuses_connections(proxy)
    reopened = fault_client.set_enabled(proxy.name, True)
    assert reopened.listen == proxy.listen
    with connect(reopened) as sock:
        assert round_trip_s(sock) < 50 * MS


def test_proxy_passes_half_close(make_proxy: ProxyFactory) -> None:
    """A client that shuts down its sending side still gets the whole echo, then EOF."""
    proxy = make_proxy()
    payload = os.urandom(100_000)
    with connect(proxy) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        assert recv_until_eof(sock) == payload


def test_unreachable_upstream_closes_client(make_proxy: ProxyFactory) -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        upstream = listener_address(placeholder)
    proxy = make_proxy(upstream=upstream)  # nothing listens there any more
    with connect(proxy, timeout_s=2.0) as sock:
        assert recv_until_eof(sock) == b""


def test_reset_peer_added_to_live_connection(
    make_proxy: ProxyFactory, fault_client: FaultProxyClient
) -> None:
    proxy = make_proxy()
    with connect(proxy) as sock:
        round_trip_s(sock)
        fault_client.add_toxic(proxy.name, "reset_peer", timeout=0)
        sock.sendall(b"ping")
        with pytest.raises(ConnectionResetError):
            sock.recv(16)


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def test_backpressure_bounds_buffered_data(
    make_proxy: ProxyFactory, fault_client: FaultProxyClient, fault_server: RunningFaultProxy
) -> None:
    """A client that writes but never reads gets blocked once the buffers are full.

    The proxy may hold 32 MiB per direction (the default --max-buffer-mib); the kernel's socket
    buffers on the way hold a few MiB more. Without backpressure the client would write at full
    speed for the whole 3 s.
    """
    proxy = make_proxy()
    fault_client.add_toxic(proxy.name, "latency", latency=10)
    assert fault_server.process.pid is not None
    rss_before = _rss_bytes(fault_server.process.pid)
    block = os.urandom(1024 * 1024)
    sent = 0
    with connect(proxy) as sock:
        sock.setblocking(False)
        deadline = time.monotonic() + 3.0
        last_progress = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last_progress < 0.5:
            try:
                sent += sock.send(block)
                last_progress = time.monotonic()
            except BlockingIOError:
                time.sleep(0.01)
        rss_growth = _rss_bytes(fault_server.process.pid) - rss_before
    assert sent < 128 * 1024 * 1024, f"the client wrote {sent / 2**20:.0f} MiB without being blocked"
    assert rss_growth < 96 * 1024 * 1024, f"the proxy grew by {rss_growth / 2**20:.0f} MiB"


def _open_fds(pid: int) -> int:
    return len(os.listdir(Path(f"/proc/{pid}/fd")))


def test_add_remove_rounds_do_not_hang(
    make_proxy: ProxyFactory, fault_client: FaultProxyClient, fault_server: RunningFaultProxy
) -> None:
    """1000 rounds of add toxic, connect, write, remove toxic while the data is in flight.

    The removal can reach the proxy before the new connection does, and then the data passes
    untouched, so a destructive toxic may leave the payload intact.
    """
    toxics: list[tuple[str, dict[str, int]]] = [
        ("latency", {"latency": 1}),
        ("bandwidth", {"rate": 10_000}),
        ("slicer", {"average_size": 16, "size_variation": 8, "delay": 10}),
        ("slow_close", {"delay": 1}),
        ("limit_data", {"bytes": 1_000_000}),
        ("timeout", {"timeout": 0}),
        ("reset_peer", {"timeout": 0}),
    ]
    intact = {"latency", "bandwidth", "slicer", "slow_close", "limit_data"}
    payload = bytes(range(256)) * 4
    proxy = make_proxy()
    assert fault_server.process.pid is not None
    fds_before = _open_fds(fault_server.process.pid)
    deadline = time.monotonic() + 120
    for round_number in range(1000):
        toxic_type, attributes = toxics[round_number % len(toxics)]
        fault_client.add_toxic(proxy.name, toxic_type, **attributes)
        with connect(proxy, timeout_s=2.0) as sock:
            sock.sendall(payload)
            fault_client.remove_toxic(proxy.name, f"{toxic_type}_downstream")
            try:
                received: bytes | None = recv_exactly(sock, len(payload))
            except ConnectionResetError:
                received = None
        if toxic_type in intact:
            assert received == payload, f"round {round_number}: {toxic_type} lost or repeated data"
        elif toxic_type == "timeout":
            assert received in (b"", payload), f"round {round_number}: timeout let {received!r} through"
        else:
            assert received in (None, payload), f"round {round_number}: reset_peer gave {received!r}"
        assert time.monotonic() < deadline, f"1000 rounds took over 120 s; stopped at round {round_number}"

    assert fault_client.get_proxy(proxy.name).toxics == ()
    settle_deadline = time.monotonic() + 5
    while _open_fds(fault_server.process.pid) > fds_before + 4 and time.monotonic() < settle_deadline:
        time.sleep(0.05)
    assert _open_fds(fault_server.process.pid) <= fds_before + 4, "the proxy leaked sockets"
