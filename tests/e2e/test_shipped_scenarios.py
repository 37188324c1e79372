"""The scenarios that `make gate` runs, shortened with --duration-scale, pass on the local stack."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_shipped_scenarios_pass_quickly(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "harness.cli", "run", str(REPO / "scenarios"),
            "--duration-scale", "0.25",
            "--reports-dir", str(tmp_path),
            "--run-id", "shipped",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = json.loads((tmp_path / "shipped" / "summary.json").read_text())
    assert summary["verdict"] == "pass"
    shipped = sorted(path.stem for path in (REPO / "scenarios").glob("*.yaml"))
    assert sorted(scenario["name"] for scenario in summary["scenarios"]) == shipped
    assert all(slo["samples"] > 0 for scenario in summary["scenarios"] for slo in scenario["slos"])
    assert (tmp_path / "shipped" / "junit.xml").exists()
    (evals,) = [scenario["eval"] for scenario in summary["scenarios"] if scenario["eval"] is not None]
    assert [scorer["status"] for scorer in evals["scorers"]] == ["pass"] * len(evals["scorers"])
    assert evals["overall"]["status"] == "pass"
