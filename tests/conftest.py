"""Fixtures and helpers shared by slogate's own tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from textwrap import dedent

# Imported before any pytester run: an in-process run restores sys.modules afterwards, and a
# module imported for the first time inside it would come back as a second copy whose exception
# classes no longer match the first (httpx would then miss httpcore's timeouts).
import httpcore  # noqa: F401
import httpx  # noqa: F401
import pytest


def pid_alive(pid: int) -> bool:
    """Return True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def started_pids(run_dir: Path) -> list[int]:
    """Return the pid of every process that any stack of a run started."""
    pids = []
    for listing in run_dir.glob("stacks/*/processes.json"):
        pids += [entry["pid"] for entry in json.loads(listing.read_text())]
    return pids


def scenario_text(
    name: str = "tiny",
    *,
    slo: str = "- {metric: error_rate, max: 0%}",
    duration: str = "1s",
    upstream: str = "{ttft_ms: 10, tokens_per_s: 0, output_tokens: 4}",
) -> str:
    """Return a small, fast scenario for tests that run the whole harness."""
    body = f"""\
        version: 1
        name: {name}
        stack:
          upstreams:
            primary: {upstream}
        load:
          model: open
          rate_per_s: 10
          duration: {duration}
          requests:
            - messages: [{{role: user, content: "hello there"}}]
              max_tokens: 4
        slo:
          {slo}
        """
    return dedent(body)


@pytest.fixture
def write_scenario(tmp_path: Path):  # type: ignore[no-untyped-def]
    def write(filename: str = "tiny.yaml", **kwargs: str) -> Path:
        path = tmp_path / filename
        path.write_text(scenario_text(**kwargs), encoding="utf-8")
        return path

    return write
