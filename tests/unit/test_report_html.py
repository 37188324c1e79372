"""report.html from stored data: self-contained, charts with fault windows, cost and counters."""

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.metrics.series import SERIES_COLUMNS, write_series_csv
from harness.reports.charts import Band, Chart, Series, nice_ticks, render_svg
from harness.reports.html import render_html
from harness.reports.schema import (
    CostReport,
    Distribution,
    FaultReport,
    LoadReport,
    MeasurementsReport,
    ModelCostReport,
    PhaseBudgetReport,
    RunSummary,
    ScenarioReport,
    SLOResult,
    StackReport,
    Tokens,
)
from harness.reports.writers import validate_summary

NOW = datetime(2026, 12, 4, tzinfo=UTC)
EXTERNAL_REFERENCE = re.compile(r"(?i)(https?:|ftp:|wss?:|//[a-z0-9.-]+\.[a-z]{2,}|\bsrc\s*=|@import|url\()")


def distribution(scale: float) -> Distribution:
    keys = ("p50", "p90", "p95", "p99", "p99.9", "p100")
    return Distribution(
        count=100,
        min_ms=scale,
        mean_ms=2 * scale,
        max_ms=9 * scale,
        percentiles_ms={key: scale * (i + 1) for i, key in enumerate(keys)},
    )


def scenario_report() -> ScenarioReport:
    measurements = MeasurementsReport(
        requests=100,
        successes=99,
        errors=1,
        rate_limited=0,
        error_classes={"http_status": 1},
        error_examples={"http_status": "HTTP 502"},
        window_s=10,
        scheduled_s=10,
        throughput_per_s=9.9,
        error_rate=0.01,
        e2e_latency=distribution(50),
        ttft=distribution(20),
        send_lag=distribution(1),
        queued=0,
        tokens=Tokens(prompt=100, completion=1000, method="usage"),
    )
    slo = SLOResult(
        name="ttft p95 <= 300ms [during redis-kill]",
        metric="ttft",
        percentile=95,
        comparator="max",
        limit=300,
        observed=120,
        unit="ms",
        samples=30,
        status="pass",
        gate="block",
        line=9,
        phase="during",
        fault=0,
        burn_rate=0.4,
    )
    run_wide = SLOResult(
        name="error_rate <= 1%",
        metric="error_rate",
        percentile=None,
        comparator="max",
        limit=0.01,
        observed=0.01,
        unit="%",
        samples=100,
        status="pass",
        gate="block",
        line=10,
        burn_rate=1.0,
        phase_budgets=[
            PhaseBudgetReport(
                fault=0,
                phase=phase,
                objective=0.99,
                bad=bad,
                total=30,
                allowed_bad=0.3,
                burn_rate=rate,
                remaining=1 - rate,
            )
            for phase, bad, rate in (("before", 0, 0.0), ("during", 1, 3.33), ("after", 0, 0.0))
        ],
    )
    fault = FaultReport(
        name="redis-kill",
        target="redis",
        action="kill",
        at_s=3,
        for_s=2,
        applied_at_s=3.01,
        removed_at_s=5.02,
    )
    cost = CostReport(
        requests=100,
        total_usd=0.00123,
        per_request_usd=0.0000123,
        per_1k_requests_usd=0.0123,
        cache_hits=4,
        cache_saved_usd=0.00005,
        token_method="usage",
        unpriced_models=[],
        models=[
            ModelCostReport(
                model="mock-llm",
                input_usd_per_million_tokens=0.15,
                output_usd_per_million_tokens=0.6,
                price_source="illustrative",
                requests=100,
                prompt_tokens=100,
                completion_tokens=1000,
                cache_hits=4,
                cost_usd=0.00123,
                saved_usd=0.00005,
            )
        ],
    )
    return ScenarioReport(
        name="demo",
        file="scenarios/demo.yaml",
        gate="block",
        verdict="pass",
        error=None,
        started_at=NOW,
        finished_at=NOW,
        load=LoadReport(
            model="open", rate_per_s=10, users=None, duration_s=10, max_requests=100, stream=True
        ),
        stack=StackReport(
            backend="local",
            replicas=1,
            gateway_urls=["http://127.0.0.1:1"],
            logs={"redis": "stacks/stack-1/redis.log"},
        ),
        measurements=measurements,
        slos=[slo, run_wide],
        faults=[fault],
        requests_file="requests/demo.csv",
        series_file="series/demo.csv",
        cost=cost,
        gateway_counters={"gateway-0": {"slogate_requests": {"200": 99.0, "502": 1.0}}},
        gateway_metrics={"gateway-0": "metrics/demo/gateway-0.prom"},
    )


def summary() -> RunSummary:
    return RunSummary(
        run_id="r1",
        started_at=NOW,
        finished_at=NOW,
        slogate_version="0",
        backend="local",
        duration_scale=1,
        verdict="pass",
        errors=[],
        scenarios=[scenario_report()],
    )


@pytest.fixture
def html(tmp_path: Path) -> str:
    rows = [
        {column: 0 for column in SERIES_COLUMNS}
        | {"second": second, "successes": 10, "started": 10, "e2e_p95_ms": 50.0}
        for second in range(10)
    ]
    write_series_csv(rows, tmp_path / "series" / "demo.csv")
    return render_html(summary(), tmp_path)


def test_html_references_no_external_url(html: str) -> None:
    assert EXTERNAL_REFERENCE.findall(html) == []


def test_html_links_are_relative_files(html: str) -> None:
    links = re.findall(r'href="([^"]+)"', html)
    assert "stacks/stack-1/redis.log" in links
    assert "metrics/demo/gateway-0.prom" in links
    assert all(not link.startswith(("/", "http")) for link in links)


def test_html_shades_fault_window(html: str) -> None:
    assert html.count('<rect class="fault"') == 5
    assert "redis-kill: kill redis" in html


def test_html_shows_verdict_banner(html: str) -> None:
    assert '<div class="banner verdict-pass">slogate run r1: PASS</div>' in html


def test_html_shows_objective_row(html: str) -> None:
    assert "ttft p95 &lt;= 300ms [during redis-kill]" in html
    assert "during fault 0" in html
    assert ">0.4<" in html


def test_html_shows_phase_burn_rates(html: str) -> None:
    assert "fault 0: 0 / 3.33 / 0" in html


def test_html_shows_cost_and_counters(html: str) -> None:
    assert "$0.0123 per 1000 requests" in html
    assert "slogate_requests" in html


def test_html_has_percentile_chart(html: str) -> None:
    assert "Latency percentiles" in html
    assert ">p99.9<" in html


def test_chart_breaks_line_at_gaps() -> None:
    chart = Chart("t", "ms", [0, 1, 2, 3], [Series("s", [1.0, None, 2.0, 3.0])])
    assert render_svg(chart).count("<polyline") == 2


def test_chart_without_samples_says_so() -> None:
    assert "no samples" in render_svg(Chart("t", "ms", [0, 1], [Series("s", [None, None])]))


def test_chart_band_spans_window() -> None:
    svg = render_svg(Chart("t", "ms", [0, 10], [Series("s", [1.0, 1.0])], [Band(2, 4, "f")]))
    (width,) = re.findall(r'<rect class="fault" x="[0-9.]+" y="[0-9.]+" width="([0-9.]+)"', svg)
    assert float(width) == pytest.approx((860 - 64 - 16) * 0.2, abs=0.2)


def test_nice_ticks_cover_range() -> None:
    assert nice_ticks(0, 93) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0, 0.4) == [0, 0.1, 0.2, 0.3, 0.4]


def test_summary_validation_names_field() -> None:
    data = json.loads(summary().model_dump_json())
    data["scenarios"][0]["slos"][0]["status"] = "great"
    with pytest.raises(ValueError, match="at scenarios/0/slos/0/status: 'great' is not one of"):
        validate_summary(data)


def test_summary_validation_accepts_report() -> None:
    validate_summary(json.loads(summary().model_dump_json()))
