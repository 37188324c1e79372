"""Benchmark the built-in load engine, one core each, against nginx, Locust FastHttpUser and wrk.

Measures, in one run: the highest non-streaming request rate of the built-in engine (with its
full measurement pipeline: histograms, series and the per-request CSV), of Locust FastHttpUser
in one process and of wrk, all against one nginx worker serving a static chat completion; the
most concurrent SSE streams the engine holds against the mock LLM with the TTFT stamp error
p99 of each level; and the engine's TTFT and E2E accuracy at 50 and 500 requests/s. The load
generator runs on core 0 and the server on core 1 (taskset). Everything listens on 127.0.0.1.

Needs nginx and wrk on PATH (`make bench-deps`). Run: .venv/bin/python benchmarks/load_engine.py
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.stack.process import free_loopback_port  # noqa: E402

GENERATOR_CORE = "0"
SERVER_CORE = "1"
BODY = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 0,
    "model": "mock-llm",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "alpha bravo"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}
REQUEST = '{"model":"mock-llm","messages":[{"role":"user","content":"hello"}],"stream":false}'
NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  keepalive_requests 10000000;
  server {{
    listen 127.0.0.1:{port};
    location = /v1/chat/completions {{
      default_type application/json;
      error_page 405 =200 $uri;
      alias {dir}/completion.json;
    }}
  }}
}}
"""
LOCUSTFILE = f"""\
from locust import FastHttpUser, task

class Chat(FastHttpUser):
    @task
    def chat(self):
        self.client.post("/v1/chat/completions", data={REQUEST!r},
                         headers={{"content-type": "application/json"}})
"""
WRK_SCRIPT = f"""\
wrk.method = "POST"
wrk.body = '{REQUEST}'
wrk.headers["Content-Type"] = "application/json"
"""

ENGINE_RATE = """\
import sys, time
from pathlib import Path
from harness.load.engine import Target, run_load_blocking
from harness.metrics.series import SeriesBuilder
from harness.metrics.summary import MeasurementsBuilder
from harness.reports.writers import RequestsCSV
from harness.scenario.load import LoadSpec
url, users, seconds, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
spec = LoadSpec.model_validate({"model": "closed", "users": users, "duration": seconds, "stream": False,
    "max_requests": 10_000_000, "requests": [{"messages": [{"role": "user", "content": "hello"}]}]})
builder, series = MeasurementsBuilder(), SeriesBuilder()
with RequestsCSV(out) as rows:
    def sink(record):
        builder.add(record); series.add(record); rows.write(record)
    started = time.monotonic()
    run_load_blocking(spec, Target([url], "mock-llm"), sink=sink)
    elapsed = time.monotonic() - started
m = builder.build()
print({"requests": m.requests, "errors": m.errors, "rate": m.requests / elapsed})
"""

ENGINE_STREAMS = """\
import sys, time
from harness.load.engine import Target, run_load_blocking
from harness.metrics.summary import MeasurementsBuilder
from harness.scenario.load import LoadSpec
url, users, seconds, ttft = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
# Arrivals spread evenly at the rate that keeps `users` streams open, so the mock is not hit by a burst.
spec = LoadSpec.model_validate({"model": "open", "rate_per_s": users / 3.2, "duration": seconds,
    "timeout": "60s", "requests": [{"messages": [{"role": "user", "content": "hello"}]}]})
builder = MeasurementsBuilder()
peak = 0
def sink(record):
    builder.add(record)
def progress(snapshot):
    global peak
    peak = max(peak, snapshot.in_flight)
run_load_blocking(spec, Target([url], "mock-llm"), progress=progress, sink=sink)
m = builder.build()
p = lambda q: (m.ttft.percentile(q) or 0) * 1000 - ttft
print({"requests": m.requests, "errors": m.errors, "peak_in_flight": peak,
       "ttft_error_p50_ms": round(p(50), 2), "ttft_error_p99_ms": round(p(99), 2)})
"""

ENGINE_ACCURACY = """\
import sys
from harness.load.engine import Target, run_load_blocking
from harness.metrics.summary import summarize
from harness.scenario.load import LoadSpec
url, rate = sys.argv[1], float(sys.argv[2])
spec = LoadSpec.model_validate({"model": "open", "rate_per_s": rate, "duration": "5s", "warmup": "500ms",
    "requests": [{"messages": [{"role": "user", "content": "hello"}]}]})
m = summarize(run_load_blocking(spec, Target([url], "mock-llm")).records)
ms = lambda h, q: round((h.percentile(q) or 0) * 1000, 2)
print({"requests": m.requests, "errors": m.errors,
       "ttft_p50_ms": ms(m.ttft, 50), "ttft_p99_ms": ms(m.ttft, 99),
       "e2e_p50_ms": ms(m.e2e_latency, 50), "e2e_p99_ms": ms(m.e2e_latency, 99)})
"""


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv]


def run_python(code: str, *args: str, timeout_s: float = 300) -> dict[str, Any]:
    result = subprocess.run(
        pinned(GENERATOR_CORE, [sys.executable, "-c", code, *args]),
        cwd=REPO, capture_output=True, text=True, timeout=timeout_s, check=True,
    )  # fmt: skip
    return dict(eval(result.stdout.strip().splitlines()[-1]))  # our own child's dict literal


@contextmanager
def server(argv: list[str], ready_url: str | None, port: int) -> Iterator[None]:
    process = subprocess.Popen(
        pinned(SERVER_CORE, argv),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not _port_open(port):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{argv[0]} did not start listening on 127.0.0.1:{port}")
            time.sleep(0.05)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def nginx(workdir: Path) -> tuple[list[str], int]:
    port = free_loopback_port()
    workdir.chmod(0o755)  # nginx's worker process runs as an unprivileged user and reads the body file
    (workdir / "completion.json").write_text(json.dumps(BODY), encoding="utf-8")
    (workdir / "nginx.conf").write_text(NGINX_CONF.format(dir=workdir, port=port), encoding="utf-8")
    return ["nginx", "-c", str(workdir / "nginx.conf"), "-p", str(workdir)], port


def locust_rate(workdir: Path, url: str, users: int, seconds: int) -> dict[str, Any]:
    (workdir / "bench_locustfile.py").write_text(LOCUSTFILE, encoding="utf-8")
    argv = [
        sys.executable, "-m", "locust", "-f", str(workdir / "bench_locustfile.py"), "--headless",
        "--host", url, "-u", str(users), "-r", str(users), "--run-time", f"{seconds}s",
        "--csv", str(workdir / "locust"), "--only-summary",
    ]  # fmt: skip
    subprocess.run(pinned(GENERATOR_CORE, argv), cwd=workdir, capture_output=True, timeout=seconds + 60)
    with (workdir / "locust_stats.csv").open(encoding="utf-8") as handle:
        total = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")
    return {"requests": int(total["Request Count"]), "errors": int(total["Failure Count"]),
            "rate": float(total["Requests/s"])}  # fmt: skip


def wrk_rate(workdir: Path, url: str, connections: int, seconds: int) -> dict[str, Any]:
    (workdir / "post.lua").write_text(WRK_SCRIPT, encoding="utf-8")
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(workdir / "post.lua"),
            f"{url}/v1/chat/completions"]  # fmt: skip
    output = subprocess.run(
        pinned(GENERATOR_CORE, argv), capture_output=True, text=True, timeout=seconds + 60
    ).stdout
    match = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    return {"rate": float(match[1]) if match else None}


def mock_argv(port_fd_free: int, *flags: str) -> list[str]:
    return [sys.executable, "-m", "target_service.mock_llm.cli", "--port", str(port_fd_free), *flags]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=int, default=10, help="length of each rate measurement (default: 10)"
    )
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (default: 32)")
    parser.add_argument(
        "--streams", default="250,500,1000,1500", help="SSE stream levels (default: %(default)s)"
    )
    args = parser.parse_args()
    missing = [tool for tool in ("nginx", "wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        print(
            f"missing on PATH: {', '.join(missing)}; run `make bench-deps` (as root) first", file=sys.stderr
        )
        return 2
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()}: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Linux {platform.release()}, Python {platform.python_version()}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    with tempfile.TemporaryDirectory(prefix="slogate-bench-") as folder:
        workdir = Path(folder)
        argv, port = nginx(workdir)
        url = f"http://127.0.0.1:{port}"
        with server(argv, None, port):
            results["builtin"] = run_python(
                ENGINE_RATE, url, str(args.connections), f"{args.seconds}s", str(workdir / "requests.csv")
            )
            results["locust_fasthttpuser"] = locust_rate(workdir, url, args.connections, args.seconds)
            results["wrk"] = wrk_rate(workdir, url, args.connections, args.seconds)
        ratio = results["builtin"]["rate"] / results["locust_fasthttpuser"]["rate"]
        results["builtin_over_locust"] = round(ratio, 2)

        port = free_loopback_port()
        # Streams of 200 ms to the first token, then 4 tokens at 1 per second: about 3.2 s each.
        flags = ["--ttft-ms", "200", "--tokens-per-s", "1", "--output-tokens", "4"]
        results["streams"] = []
        with server(mock_argv(port, *flags), None, port):
            for level in (int(level) for level in args.streams.split(",")):
                outcome = run_python(ENGINE_STREAMS, f"http://127.0.0.1:{port}", str(level), "12s", "200")
                results["streams"].append({"streams": level, **outcome})

        port = free_loopback_port()
        flags = ["--ttft-ms", "50", "--tokens-per-s", "100", "--output-tokens", "2"]
        results["accuracy"] = {"injected_ttft_ms": 50.0, "injected_e2e_ms": 60.0}
        with server(mock_argv(port, *flags), None, port):
            for rate in ("50", "500"):
                results["accuracy"][f"{rate}/s"] = run_python(
                    ENGINE_ACCURACY, f"http://127.0.0.1:{port}", rate
                )
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
