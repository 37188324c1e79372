"""The slogate command as a user runs it: a real subprocess, real exit codes."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import pid_alive, started_pids

SLOGATE = [sys.executable, "-m", "harness.cli"]
IMPOSSIBLE_TTFT = "- {metric: ttft, percentile: 50, max: 1ms}"
WriteScenario = Callable[..., Path]


def slogate(*args: str, cwd: Path, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SLOGATE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout_s)


def test_run_impossible_slo_exits_nonzero(tmp_path: Path, write_scenario: WriteScenario) -> None:
    path = write_scenario(slo=IMPOSSIBLE_TTFT)
    result = slogate("run", str(path), "--run-id", "r1", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "SLO failed: ttft p50 <= 1ms: observed" in result.stdout
    summary = json.loads((tmp_path / "reports" / "r1" / "summary.json").read_text())
    (slo,) = summary["scenarios"][0]["slos"]
    assert slo["status"] == "fail"
    assert slo["observed"] > slo["limit"] == 1.0
    junit = (tmp_path / "reports" / "r1" / "junit.xml").read_text()
    assert 'failures="1"' in junit
    assert "ttft p50 &lt;= 1ms" in junit


def test_run_passing_scenario_exits_zero(tmp_path: Path, write_scenario: WriteScenario) -> None:
    result = slogate("run", str(write_scenario()), "--run-id", "r2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "reports" / "r2" / "summary.md").exists()


def test_run_missing_path_is_usage_error(tmp_path: Path) -> None:
    result = slogate("run", "nowhere.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "no such file or folder: nowhere.yaml" in result.stderr


PAUSE_UPSTREAM = "- {at: 500ms, for: 50s, target: upstream.primary, action: pause}"
SLOW_REDIS = "- {at: 500ms, for: 50s, target: redis, toxic: {type: latency, latency: 200}}"


@pytest.mark.parametrize("fault", ["", PAUSE_UPSTREAM, SLOW_REDIS], ids=["no-fault", "process", "toxic"])
def test_run_interrupted_leaves_no_process(tmp_path: Path, write_scenario: WriteScenario, fault: str) -> None:
    path = write_scenario(duration="60s")
    if fault:
        path.write_text(path.read_text() + f"faults:\n  {fault}\n", encoding="utf-8")
    process = subprocess.Popen(
        [*SLOGATE, "run", str(path), "--run-id", "r3"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    run_dir = tmp_path / "reports" / "r3"
    deadline = time.monotonic() + 60
    while len(started_pids(run_dir)) < 4 or not (run_dir / "requests").parent.exists():
        assert time.monotonic() < deadline, "the stack never started"
        time.sleep(0.1)
    time.sleep(2)  # let the load start
    pids = started_pids(run_dir)
    assert all(pid_alive(pid) for pid in pids)
    os.kill(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2, output
    assert "KeyboardInterrupt" in output
    assert [pid for pid in pids if pid_alive(pid)] == []
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verdict"] == "error"
    assert summary["errors"] == ["the run was interrupted before every scenario finished"]


def test_validate_reports_every_problem(tmp_path: Path, write_scenario: WriteScenario) -> None:
    good = write_scenario("good.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("max_tokens: 4", "max_tokens: four"), encoding="utf-8")
    result = slogate("validate", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert "good.yaml: ok (scenario tiny)" in result.stdout
    assert "bad.yaml:12:19: load.requests[0].max_tokens: Input should be a valid integer" in result.stderr
    assert "1 valid, 1 invalid" in result.stderr


def test_validate_rejects_duplicate_names(tmp_path: Path, write_scenario: WriteScenario) -> None:
    write_scenario("a.yaml")
    write_scenario("b.yaml")
    result = slogate("validate", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert "b.yaml:2:7: name: scenario name 'tiny' is already used by" in result.stderr


def test_validate_shipped_scenarios(tmp_path: Path) -> None:
    scenarios = Path(__file__).resolve().parents[2] / "scenarios"
    result = slogate("validate", str(scenarios), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_schema_prints_json_schema(tmp_path: Path) -> None:
    result = slogate("schema", cwd=tmp_path)
    schema = json.loads(result.stdout)
    assert result.returncode == 0
    assert set(schema["required"]) == {"version", "name", "load"}


def test_schema_into_closed_pipe_is_quiet(tmp_path: Path) -> None:
    reader = subprocess.Popen(["head", "-c", "10"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    writer = subprocess.run([*SLOGATE, "schema"], cwd=tmp_path, stdout=reader.stdin, stderr=subprocess.PIPE)
    assert reader.stdin is not None
    reader.stdin.close()
    reader.wait(timeout=30)
    assert "Traceback" not in writer.stderr.decode()
