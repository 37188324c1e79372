import json
from datetime import UTC, datetime

from harness.reports.schema import (
    SUMMARY_SCHEMA_FILE,
    Distribution,
    LoadReport,
    MeasurementsReport,
    RunSummary,
    ScenarioReport,
    SLOResult,
    Tokens,
    summary_json_schema,
)
from harness.reports.summary import run_verdict
from harness.reports.tables import render_markdown

NOW = datetime(2026, 12, 4, tzinfo=UTC)
EMPTY = Distribution(count=0, min_ms=None, mean_ms=None, max_ms=None, percentiles_ms={})


def scenario(verdict: str = "fail", errors: dict[str, int] | None = None) -> ScenarioReport:
    measurements = MeasurementsReport(
        requests=10,
        successes=10 - sum((errors or {}).values()),
        errors=sum((errors or {}).values()),
        rate_limited=0,
        error_classes=errors or {},
        error_examples={name: f"HTTP 500: {name} example" for name in errors or {}},
        window_s=1.0,
        scheduled_s=1.0,
        throughput_per_s=9.0,
        error_rate=0.1,
        e2e_latency=EMPTY,
        ttft=EMPTY,
        send_lag=EMPTY,
        queued=0,
        tokens=Tokens(prompt=0, completion=0, method="none"),
    )
    slo = SLOResult(
        name="error_rate <= 0%",
        metric="error_rate",
        percentile=None,
        comparator="max",
        limit=0.0,
        observed=0.1,
        unit="%",
        samples=10,
        status="fail",
        gate="block",
        line=7,
    )
    return ScenarioReport(
        name="demo",
        file="scenarios/demo.yaml",
        gate="block",
        verdict=verdict,  # type: ignore[arg-type]
        error=None,
        started_at=NOW,
        finished_at=NOW,
        load=LoadReport(model="open", rate_per_s=10, users=None, duration_s=1, max_requests=10, stream=True),
        stack=None,
        measurements=measurements,
        slos=[slo],
        requests_file=None,
    )


def summary(*scenarios: ScenarioReport, errors: list[str] | None = None) -> RunSummary:
    return RunSummary(
        run_id="r",
        started_at=NOW,
        finished_at=NOW,
        slogate_version="0",
        backend="local",
        duration_scale=1,
        verdict="fail",
        errors=errors or [],
        scenarios=list(scenarios),
    )


def test_shipped_summary_schema_is_current() -> None:
    shipped = json.loads(SUMMARY_SCHEMA_FILE.read_text())
    assert shipped == summary_json_schema(), "regenerate harness/reports/summary.schema.json"


def test_run_verdict_takes_worst() -> None:
    assert run_verdict(["pass", "warn"]) == "warn"
    assert run_verdict(["pass", "fail", "warn"]) == "fail"
    assert run_verdict(["fail", "error"]) == "error"
    assert run_verdict([]) == "pass"


def test_markdown_lists_slo_rows() -> None:
    markdown = render_markdown(summary(scenario()))
    assert markdown.startswith("# slogate run r: FAIL")
    assert "| demo | error_rate <= 0% | 10% | 0% | 10 | - | block | FAIL |" in markdown


def test_markdown_explains_failed_requests() -> None:
    markdown = render_markdown(summary(scenario(errors={"http_status": 1})))
    assert "## demo: failed requests" in markdown
    assert "1 http_status (first: HTTP 500: http_status example)" in markdown


def test_markdown_lists_run_errors() -> None:
    markdown = render_markdown(summary(errors=["broken.yaml:3:1: name: required field is missing"]))
    assert "## Errors" in markdown
    assert "broken.yaml:3:1: name: required field is missing" in markdown


def test_markdown_fences_code_with_backticks() -> None:
    markdown = render_markdown(summary(errors=["a ``` fence"]))
    assert "````\na ``` fence\n````" in markdown
