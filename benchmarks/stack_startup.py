"""Measure how long a stack takes to start and to stop on the local and docker backends.

Each repeat brings up a stack (Redis, the fault proxy, one mock upstream and ``--replicas`` gateway
replicas), waits until every service is ready, then tears it down:

    .venv/bin/python benchmarks/stack_startup.py [--backends local docker] [--replicas 2] [--repeats 3]

The docker backend needs a running engine and the images of ``make offline-images``. Prints one
JSON object per repeat.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from harness.scenario.stack import StackSpec
from harness.stack.base import StackBackend
from harness.stack.docker import DockerStack
from harness.stack.local import LocalStack


def make_stack(backend: str, spec: StackSpec, workdir: Path) -> StackBackend:
    if backend == "docker":
        return DockerStack(spec, workdir, run_id="benchmark-stack-startup")
    return LocalStack(spec, workdir)


def measure(backend: str, spec: StackSpec) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as workdir:
        stack = make_stack(backend, spec, Path(workdir))
        started = time.monotonic()
        try:
            stack.up()
            ready = time.monotonic()
        finally:
            stack.down()
        stopped = time.monotonic()
    return {"up_s": round(ready - started, 3), "down_s": round(stopped - ready, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backends", nargs="+", default=["local", "docker"], choices=["local", "docker"])
    parser.add_argument("--replicas", type=int, default=2, help="gateway replicas per stack (default: 2)")
    parser.add_argument("--repeats", type=int, default=3, help="stacks started per backend (default: 3)")
    args = parser.parse_args()
    spec = StackSpec(replicas=args.replicas)
    for backend in args.backends:
        for repeat in range(1, args.repeats + 1):
            print(json.dumps({"backend": backend, "repeat": repeat, **measure(backend, spec)}), flush=True)


if __name__ == "__main__":
    main()
