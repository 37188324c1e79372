"""The gate against a baseline run: the same scenario passes, an added upstream latency is flagged.

The slower run uses a copy of the scenario whose mock upstream sends its first token later.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenarios" / "steady-load.yaml"
SCALE = "0.25"


def slogate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "harness.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=240)


def run(scenario: Path, run_id: str, reports: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    arguments = [str(scenario), "--duration-scale", SCALE, "--reports-dir", str(reports), "--run-id", run_id]
    return slogate("run", *arguments, *extra, cwd=REPO)


def summary(reports: Path, run_id: str) -> dict:  # type: ignore[type-arg]
    return json.loads((reports / run_id / "summary.json").read_text())


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reports")
    result = run(SCENARIO, "baseline", folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return folder


@pytest.fixture(scope="module")
def slower(reports: Path, tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    copy = tmp_path_factory.mktemp("slower") / "steady-load.yaml"
    text = SCENARIO.read_text(encoding="utf-8")
    assert "ttft_ms: 80," in text
    copy.write_text(text.replace("ttft_ms: 80,", "ttft_ms: 160,"), encoding="utf-8")
    return run(copy, "slower", reports, "--baseline", str(reports / "baseline"))


def test_same_scenario_passes_against_baseline(reports: Path) -> None:
    result = run(SCENARIO, "again", reports, "--baseline", str(reports / "baseline" / "summary.json"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    (scenario,) = summary(reports, "again")["scenarios"]
    assert scenario["baseline"]["run_id"] == "baseline"
    assert scenario["baseline"]["regressions"] == []
    deltas = [slo["baseline"] for slo in scenario["slos"]]
    assert all(delta["baseline_samples"] > 0 and delta["current_samples"] > 0 for delta in deltas)
    assert {delta["method"] for delta in deltas} == {"mann-whitney", "bootstrap"}


def test_added_latency_flagged_as_regression(reports: Path, slower: subprocess.CompletedProcess[str]) -> None:
    assert slower.returncode == 1, slower.stdout[-4000:] + slower.stderr[-2000:]
    (scenario,) = summary(reports, "slower")["scenarios"]
    assert scenario["verdict"] == "fail"
    assert all(slo["status"] == "pass" for slo in scenario["slos"])
    assert "ttft p95 <= 250ms" in scenario["baseline"]["regressions"]
    (ttft,) = [slo["baseline"] for slo in scenario["slos"] if slo["name"] == "ttft p95 <= 250ms"]
    assert ttft["status"] == "regression"
    assert ttft["p_value"] < 0.01
    assert ttft["effect_size"] > 0.9
    assert ttft["change"] > 0.5
    assert "regression against baseline baseline: ttft p95 <= 250ms:" in slower.stdout
    assert "mann-whitney p=" in slower.stdout
    assert "Cliff's delta +" in slower.stdout


def test_compare_prints_regression(reports: Path, slower: subprocess.CompletedProcess[str]) -> None:
    result = slogate("compare", str(reports / "baseline"), str(reports / "slower"), cwd=REPO)
    assert result.returncode == 1, result.stdout + result.stderr
    (row,) = [line for line in result.stdout.splitlines() if "ttft p95 <= 250ms" in line]
    assert row.rstrip().endswith("REGRESSION")
    assert "regression: steady-load: ttft p95 <= 250ms:" in result.stderr


def test_report_rebuilds_from_stored_data(reports: Path, slower: subprocess.CompletedProcess[str]) -> None:
    run_dir = reports / "slower"
    (run_dir / "report.html").unlink()
    (run_dir / "summary.md").unlink()
    result = slogate("report", str(run_dir), cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "vs baseline" in (run_dir / "report.html").read_text(encoding="utf-8")
    assert "regression" in (run_dir / "summary.md").read_text(encoding="utf-8")


def test_compare_without_common_scenario_fails(reports: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    stored = summary(reports, "baseline")
    stored["scenarios"][0]["name"] = "another-scenario"
    (renamed / "summary.json").write_text(json.dumps(stored), encoding="utf-8")
    result = slogate("compare", str(reports / "baseline"), str(renamed), cwd=REPO)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "steady-load: not compared: only in the baseline run" in result.stderr
    assert "another-scenario: not compared:" in result.stderr
    assert "0 regression(s)" in result.stdout
    assert "2 scenario(s) not compared" in result.stdout
