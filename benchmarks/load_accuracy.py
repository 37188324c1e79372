"""Measure the built-in engine's TTFT and E2E against a mock upstream with fixed, known delays.

The mock sends the first token 50 ms after a request arrives and the second 10 ms later. For each
rate the script prints the measured p50 and p99 of TTFT and E2E and the generator's send lag. It
also prints how late the mock itself wrote the first token (from its /mock/stats), which separates
the harness's own error from the mock's.

    .venv/bin/python benchmarks/load_accuracy.py --rates 50 500 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.load.engine import Target, run_load_blocking  # noqa: E402
from harness.metrics.summary import summarize  # noqa: E402
from harness.scenario.load import LoadSpec  # noqa: E402
from tests.integration.servers import running_mock  # noqa: E402

TTFT_MS = 50
TOKENS_PER_S = 100


def measure(url: str, rate: int, seconds: float) -> dict[str, float]:
    """Run one open-model load at ``rate`` and return the percentiles in milliseconds."""
    httpx.post(f"{url}/mock/reset", timeout=5).raise_for_status()
    spec = LoadSpec.model_validate(
        {
            "model": "open",
            "rate_per_s": rate,
            "duration": f"{seconds}s",
            "warmup": "500ms",
            "requests": [{"messages": [{"role": "user", "content": "hello"}]}],
        }
    )
    measurements = summarize(run_load_blocking(spec, Target([url], "mock-llm")).records)
    lateness = httpx.get(f"{url}/mock/stats", timeout=5).json()["first_token_lateness_ms"]
    row = {"errors": float(measurements.errors)}
    for percentile in (50, 99):
        row[f"ttft_p{percentile}"] = (measurements.ttft.percentile(percentile) or 0) * 1000
        row[f"e2e_p{percentile}"] = (measurements.e2e_latency.percentile(percentile) or 0) * 1000
        row[f"lag_p{percentile}"] = (measurements.send_lag.percentile(percentile) or 0) * 1000
        row[f"mock_late_p{percentile}"] = lateness[f"p{percentile}"]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[50, 500], help="requests per second")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each run (default: 4)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per rate (default: 3)")
    parser.add_argument(
        "--pin", action="store_true", help="run the generator on CPU 0 and the mock on CPU 1 (Linux)"
    )
    args = parser.parse_args()

    flags = [
        "--ttft-ms",
        str(TTFT_MS),
        "--tokens-per-s",
        str(TOKENS_PER_S),
        "--output-tokens",
        "2",
        "--precise-timing",
    ]
    columns = [
        "ttft_p50",
        "ttft_p99",
        "e2e_p50",
        "e2e_p99",
        "lag_p50",
        "lag_p99",
        "mock_late_p50",
        "mock_late_p99",
    ]

    print("| rate | " + " | ".join(columns) + " | errors |")
    print("|---" * (len(columns) + 2) + "|")
    with running_mock("accuracy", Path(tempfile.mkdtemp(prefix="slogate-accuracy-")), *flags) as mock:
        if args.pin and mock.process.pid is not None:
            os.sched_setaffinity(0, {0})
            os.sched_setaffinity(mock.process.pid, {1})
        for rate in args.rates:
            for _ in range(args.repeats):
                row = measure(mock.url, rate, args.seconds)
                cells = " | ".join(f"{row[column]:.2f}" for column in columns)
                print(f"| {rate}/s | {cells} | {row['errors']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
