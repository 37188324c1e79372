"""The pytest plugin end to end: real stacks, real load, gates that pass and gates that fail."""

import json
from pathlib import Path

import jsonschema
import pytest

from harness.reports.schema import SUMMARY_SCHEMA_FILE
from tests.conftest import pid_alive, scenario_text, started_pids

IMPOSSIBLE_TTFT = "- {metric: ttft, percentile: 50, max: 1ms}"


def write(pytester: pytest.Pytester, filename: str, **kwargs: str) -> Path:
    path = pytester.path / filename
    path.write_text(scenario_text(**kwargs), encoding="utf-8")
    return path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "-p", "no:cacheprovider",
        "-W", "ignore::pytest.PytestAssertRewriteWarning",
        "-o", "asyncio_default_fixture_loop_scope=function",
        "--reports-dir", "reports",
        "--run-id", "test-run",
        *args,
    )  # fmt: skip


def summary(pytester: pytest.Pytester) -> dict:  # type: ignore[type-arg]
    return json.loads((pytester.path / "reports" / "test-run" / "summary.json").read_text())


def test_impossible_slo_fails_run(pytester: pytest.Pytester) -> None:
    path = write(pytester, "tiny.yaml", slo=IMPOSSIBLE_TTFT)
    result = run(pytester, str(path))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    (slo,) = summary(pytester)["scenarios"][0]["slos"]
    assert slo["name"] == "ttft p50 <= 1ms"
    assert slo["status"] == "fail"
    assert slo["limit"] == 1.0
    assert slo["observed"] > 1.0
    assert slo["samples"] == 10
    assert summary(pytester)["verdict"] == "fail"
    output = result.stdout.str()
    assert f"tiny.yaml:{slo['line']}: SLO failed: ttft p50 <= 1ms: observed" in output
    assert "limit max 1ms, 10 samples" in output
    assert "slogate verdicts: FAIL" in output


def test_passing_scenario_writes_reports(pytester: pytest.Pytester) -> None:
    path = write(pytester, "tiny.yaml")
    result = run(pytester, str(path), "--junitxml", "reports/test-run/junit.xml")
    assert result.ret == pytest.ExitCode.OK
    run_dir = pytester.path / "reports" / "test-run"
    assert summary(pytester)["schema_version"] == 1
    schema = json.loads(SUMMARY_SCHEMA_FILE.read_text())
    jsonschema.validate(summary(pytester), schema)
    assert summary(pytester)["verdict"] == "pass"
    assert "| tiny | PASS |" in (run_dir / "summary.md").read_text()
    assert "<testcase" in (run_dir / "junit.xml").read_text()
    assert (pytester.path / "reports" / "latest").resolve() == run_dir.resolve()
    assert (run_dir / "requests" / "tiny.csv").read_text().count("\n") == 11
    result.stdout.fnmatch_lines(["*slogate verdicts: PASS*", "*tiny*error_rate <= 0%*PASS*"])


def test_stack_processes_stopped_after_run(pytester: pytest.Pytester) -> None:
    run(pytester, str(write(pytester, "tiny.yaml", slo=IMPOSSIBLE_TTFT)))
    pids = started_pids(pytester.path / "reports" / "test-run")
    assert len(pids) == 4
    assert [pid for pid in pids if pid_alive(pid)] == []


def test_warn_gate_reports_without_failing(pytester: pytest.Pytester) -> None:
    slo = IMPOSSIBLE_TTFT.replace("}", ", gate: warn}")
    result = run(pytester, str(write(pytester, "tiny.yaml", slo=slo)))
    assert result.ret == pytest.ExitCode.OK
    assert summary(pytester)["verdict"] == "warn"
    result.stdout.fnmatch_lines(["*ttft p50 <= 1ms*FAIL (warn)*"])


def test_malformed_scenario_names_file_line_field(pytester: pytest.Pytester) -> None:
    path = pytester.path / "broken.yaml"
    path.write_text(scenario_text().replace("duration: 1s", "durations: 1s"), encoding="utf-8")
    result = run(pytester, str(path))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*broken.yaml:9:3: load.durations: unknown field 'durations'*"])


def test_scenarios_dir_collected_by_name(pytester: pytest.Pytester) -> None:
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "a.yaml").write_text(scenario_text("a"), encoding="utf-8")
    (pytester.path / "other.yaml").write_text("not: a scenario\n", encoding="utf-8")
    result = run(pytester, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["scenarios/a.yaml::a"])
    assert "other.yaml" not in result.stdout.str()


def test_same_stack_settings_share_one_stack(pytester: pytest.Pytester) -> None:
    first = write(pytester, "first.yaml", name="first")
    second = write(pytester, "second.yaml", name="second")
    result = run(pytester, str(first), str(second))
    assert result.ret == pytest.ExitCode.OK
    stacks = sorted(p.name for p in (pytester.path / "reports" / "test-run" / "stacks").iterdir())
    assert stacks == ["stack-1"]
    assert [s["verdict"] for s in summary(pytester)["scenarios"]] == ["pass", "pass"]


def test_duration_scale_shortens_run(pytester: pytest.Pytester) -> None:
    path = write(pytester, "tiny.yaml", duration="4s")
    result = run(pytester, str(path), "--duration-scale", "0.25")
    assert result.ret == pytest.ExitCode.OK
    scenario = summary(pytester)["scenarios"][0]
    assert scenario["load"]["duration_s"] == 1.0
    assert scenario["measurements"]["requests"] == 10
    assert summary(pytester)["duration_scale"] == 0.25


def test_invalid_duration_scale_is_usage_error(pytester: pytest.Pytester) -> None:
    result = run(pytester, str(write(pytester, "tiny.yaml")), "--duration-scale", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*duration scale must be greater than 0*"])


def test_python_test_uses_stack_pool(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx
        from harness.scenario.model import StackSpec

        def test_gateway_models(slogate_stack_pool):
            _, endpoints = slogate_stack_pool.acquire(StackSpec())
            response = httpx.get(endpoints.gateway_urls[0] + "/v1/models", timeout=10)
            assert response.status_code == 200
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1)


def test_collection_error_still_writes_summary(pytester: pytest.Pytester) -> None:
    write(pytester, "good.yaml", name="good")
    broken = pytester.path / "broken.yaml"
    broken.write_text(scenario_text("broken").replace("max_tokens: 4", "max_tokens: four"), encoding="utf-8")
    result = run(pytester, str(pytester.path / "good.yaml"), str(broken))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert summary(pytester)["verdict"] == "error"
    (error,) = summary(pytester)["errors"]
    assert "broken.yaml:12:19: load.requests[0].max_tokens" in error
    assert (pytester.path / "reports" / "latest").resolve().name == "test-run"
    assert "## Errors" in (pytester.path / "reports" / "test-run" / "summary.md").read_text()


def test_duplicate_scenario_names_rejected(pytester: pytest.Pytester) -> None:
    first = write(pytester, "a.yaml", name="same")
    second = write(pytester, "b.yaml", name="same")
    result = run(pytester, str(first), str(second))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*b.yaml:2:7: name: scenario name 'same' is already used by *a.yaml*"])


def test_failure_explains_failed_requests(pytester: pytest.Pytester) -> None:
    path = write(pytester, "tiny.yaml", upstream="{ttft_ms: 10, error_rate: 100%}")
    result = run(pytester, str(path))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*1 blocking gate(s) failed: error_rate <= 0%",
            "*failed or rate-limited requests: 10 of 10",
            "*10 http_status (first: HTTP 502: *",
        ]
    )
    measurements = summary(pytester)["scenarios"][0]["measurements"]
    assert measurements["error_examples"]["http_status"].startswith("HTTP 502")
    assert "tiny: failed requests" in (pytester.path / "reports" / "test-run" / "summary.md").read_text()


def test_junit_records_slo_properties(pytester: pytest.Pytester) -> None:
    slo = "- {metric: error_rate, max: 0%}\n          " + IMPOSSIBLE_TTFT.replace("}", ", gate: warn}")
    result = run(pytester, str(write(pytester, "tiny.yaml", slo=slo)), "--junitxml", "junit.xml")
    assert result.ret == pytest.ExitCode.OK
    junit = (pytester.path / "junit.xml").read_text()
    assert (
        '<property name="slo: error_rate &lt;= 0%" value="pass: observed 0%, limit max 0%, 10 samples"'
        in junit
    )
    assert 'name="slo: ttft p50 &lt;= 1ms" value="fail: observed' in junit
    result.stdout.fnmatch_lines(["*SLOWarning: tiny: ttft p50 <= 1ms: fail: observed*"])


def test_uncollected_yaml_hint(pytester: pytest.Pytester) -> None:
    (pytester.path / "gates").mkdir()
    (pytester.path / "gates" / "a.yaml").write_text(scenario_text("a"), encoding="utf-8")
    result = run(pytester, "gates")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["*1 YAML file(s) were not collected as scenarios*"])


def test_crashed_scenario_reported_as_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("engine exploded")

    monkeypatch.setattr("harness.runner.run_load_blocking", crash)
    result = run(pytester, str(write(pytester, "tiny.yaml")))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert summary(pytester)["verdict"] == "error"
    scenario = summary(pytester)["scenarios"][0]
    assert scenario["verdict"] == "error"
    assert scenario["error"] == "the scenario crashed: RuntimeError: engine exploded"
