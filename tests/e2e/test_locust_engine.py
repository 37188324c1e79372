"""The locust engine and the built-in engine judge the same scenario on the same stack alike."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def variant(tmp_path: Path, name: str, engine_lines: str) -> Path:
    text = (REPO / "scenarios" / "steady-load.yaml").read_text(encoding="utf-8")
    text = text.replace("name: steady-load", f"name: {name}").replace("load:\n", f"load:\n{engine_lines}")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_locust_verdicts_agree_with_builtin(tmp_path: Path) -> None:
    builtin = variant(tmp_path, "steady-builtin", "")
    locust = variant(tmp_path, "steady-locust", "  engine: locust\n  workers: 2\n")
    result = subprocess.run(
        [
            sys.executable, "-m", "harness.cli", "run", str(builtin), str(locust),
            "--duration-scale", "0.1",
            "--reports-dir", str(tmp_path / "reports"),
            "--run-id", "engines",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    summary = json.loads((tmp_path / "reports" / "engines" / "summary.json").read_text())
    by_name = {scenario["name"]: scenario for scenario in summary["scenarios"]}
    builtin_verdicts = [(slo["name"], slo["status"]) for slo in by_name["steady-builtin"]["slos"]]
    locust_verdicts = [(slo["name"], slo["status"]) for slo in by_name["steady-locust"]["slos"]]
    assert locust_verdicts == builtin_verdicts, result.stdout[-4000:]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert len(list((tmp_path / "reports" / "engines" / "stacks").iterdir())) == 1
    locust_measured = by_name["steady-locust"]["measurements"]
    assert locust_measured["requests"] == by_name["steady-builtin"]["measurements"]["requests"] == 120
    assert locust_measured["ttft"]["count"] == 120
    assert by_name["steady-locust"]["load"]["engine"] == "locust"
