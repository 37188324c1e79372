"""report.html: one self-contained page per run, with verdicts, charts, cost and gateway counters.

Everything is inline (CSS and SVG charts), and the only links are relative paths to files in the
run folder (logs, CSV, scraped metrics), so the page opens offline from an archived folder.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from harness.metrics.definitions import format_metric_value, format_usd
from harness.reports.charts import Band, Chart, Series, render_svg
from harness.reports.evals import (
    describe_eval_overall,
    format_interval,
    scorer_result_text,
    shows_mean,
    threshold_text,
)
from harness.reports.explain import describe_delta, format_change
from harness.reports.schema import Distribution, EvalScorerResult, RunSummary, ScenarioReport, SLOResult
from harness.reports.tables import result_word

REPORT_FILE = "report.html"
PERCENTILE_KEYS = ("p50", "p90", "p95", "p99", "p99.9", "p100")

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("harness.reports", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class ScenarioView:
    report: ScenarioReport
    rows: list[dict[str, Any]]
    charts: list[Markup] = field(default_factory=list)
    counters: list[tuple[str, str, list[str]]] = field(default_factory=list)
    """(counter, label value, one value per replica)."""
    eval_scorers: list[dict[str, Any]] = field(default_factory=list)
    eval_overall: str = ""


def write_html_report(summary: RunSummary, run_dir: Path) -> Path:
    """Render report.html into ``run_dir`` from the summary and the run's series files."""
    path = run_dir / REPORT_FILE
    path.write_text(render_html(summary, run_dir), encoding="utf-8")
    return path


def render_html(summary: RunSummary, run_dir: Path) -> str:
    views = [scenario_view(scenario, run_dir) for scenario in summary.scenarios]
    template = _ENVIRONMENT.get_template("report.html.j2")
    return template.render(summary=summary, scenarios=views, usd=_usd, value=format_metric_value)


def _usd(amount: float | None) -> str:
    return "-" if amount is None else format_usd(amount)


def scenario_view(scenario: ScenarioReport, run_dir: Path) -> ScenarioView:
    view = ScenarioView(scenario, [slo_row(slo) for slo in scenario.slos])
    if scenario.trust is not None and scenario.trust.status != "pass":
        view.rows.append(slo_row(scenario.trust))
    view.rows += [
        {
            "name": f"check {check.name}",
            "phase": "-",
            "observed": check.detail,
            "limit": "-",
            "samples": "-",
            "burn_rate": "-",
            "phase_burn_rates": "",
            "baseline": "",
            "baseline_detail": "",
            "gate": check.gate,
            "result": "PASS"
            if check.status == "pass"
            else ("FAIL" if check.gate == "block" else "FAIL (warn)"),
            "passed": check.status == "pass",
        }
        for check in scenario.checks
    ]
    if scenario.series_file and (run_dir / scenario.series_file).is_file():
        view.charts = [
            Markup(render_svg(chart)) for chart in series_charts(scenario, run_dir / scenario.series_file)
        ]
    if scenario.measurements is not None:
        view.charts.append(Markup(render_svg(percentile_chart(scenario))))
    view.counters = counter_rows(scenario)
    if scenario.eval is not None:
        view.eval_scorers = [eval_scorer_row(scorer) for scorer in scenario.eval.scorers]
        view.eval_overall = describe_eval_overall(scenario.eval.overall)
    return view


def eval_scorer_row(scorer: EvalScorerResult) -> dict[str, Any]:
    delta = scorer.baseline
    return {
        "name": scorer.name,
        "dataset": scorer.dataset,
        "type": scorer.type,
        "pass_rate": format_interval(scorer.pass_rate),
        "mean_score": format_interval(scorer.mean_score) if shows_mean(scorer) else "-",
        "threshold": threshold_text(scorer),
        "counts": f"{scorer.passed} / {scorer.scored}",
        "weight": f"{scorer.weight:g}",
        "baseline": ""
        if delta is None
        else f"{delta.status.replace('_', ' ')} (baseline {delta.baseline_value})",
        "gate": scorer.gate,
        "result": scorer_result_text(scorer),
        "passed": scorer.status == "pass",
        "failures": scorer.failures,
    }


def phase_label(slo: SLOResult) -> str:
    """Say which requests an objective judged: run, during fault 0, after fault 1."""
    if slo.fault is None:
        return slo.phase
    phase = "after" if slo.metric == "recovery_time" else slo.phase
    return f"{phase} fault {slo.fault}"


def slo_row(slo: SLOResult) -> dict[str, Any]:
    phase = phase_label(slo)
    delta = slo.baseline
    return {
        "name": slo.name,
        "phase": phase,
        "observed": format_metric_value(slo.metric, slo.observed)
        if slo.observed is not None
        else (slo.note or "no data"),
        "limit": f"{slo.comparator} {format_metric_value(slo.metric, slo.limit)}",
        "samples": str(slo.samples),
        "burn_rate": "-" if slo.burn_rate is None else f"{slo.burn_rate:.3g}",
        "phase_burn_rates": _phase_burn_rates(slo),
        "baseline": "" if delta is None else f"{format_change(delta)} {delta.status.replace('_', ' ')}",
        "baseline_detail": describe_delta(slo),
        "gate": slo.gate,
        "result": result_word(slo),
        "passed": slo.status == "pass",
    }


def _phase_burn_rates(slo: SLOResult) -> str:
    """Return the run-wide objective's burn rate in each phase, such as ``fault 0: 0 / 2.4 / 0``."""
    by_fault: dict[int, list[str]] = {}
    for item in slo.phase_budgets:
        shown = "-" if item.burn_rate is None else f"{item.burn_rate:.3g}"
        by_fault.setdefault(item.fault, []).append(shown)
    return "; ".join(f"fault {fault}: {' / '.join(rates)}" for fault, rates in sorted(by_fault.items()))


def _read_series(path: Path) -> list[dict[str, float | None]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            {key: float(value) if value else None for key, value in row.items()}
            for row in csv.DictReader(handle)
        ]


def fault_bands(scenario: ScenarioReport) -> list[Band]:
    bands = []
    for position, fault in enumerate(scenario.faults):
        if fault.applied_at_s is None:
            continue
        end = fault.removed_at_s if fault.removed_at_s is not None else fault.applied_at_s + fault.for_s
        label = f"{fault.name or f'fault {position}'}: {fault.action} {fault.target}"
        bands.append(Band(fault.applied_at_s, end, label))
    return bands


def series_charts(scenario: ScenarioReport, path: Path) -> list[Chart]:
    """Build the charts over time from the per-second series, with fault windows shaded."""
    rows = _read_series(path)
    x = [(row["second"] or 0.0) + 0.5 for row in rows]
    bands = fault_bands(scenario)

    def column(name: str) -> list[float | None]:
        return [row.get(name) for row in rows]

    charts = [
        Chart(
            "Throughput",
            "requests per second",
            x,
            [Series("successes/s", column("successes")), Series("started/s", column("started"), dashed=True)],
            bands,
        ),
        Chart(
            "E2E latency",
            "ms",
            x,
            [Series(f"p{p}", column(f"e2e_p{p}_ms")) for p in ("50", "95", "99")],
            bands,
        ),
    ]
    if scenario.load.stream:
        charts.append(
            Chart(
                "TTFT", "ms", x, [Series(f"p{p}", column(f"ttft_p{p}_ms")) for p in ("50", "95", "99")], bands
            )
        )
    charts.append(
        Chart(
            "Errors and 429s",
            "requests per second",
            x,
            [
                Series("errors/s", column("errors"), color="#d62728"),
                Series("429s/s", column("rate_limited"), color="#ff7f0e"),
            ],
            bands,
        )
    )
    charts.append(
        Chart("In flight", "mean requests in flight", x, [Series("in flight", column("in_flight"))], bands)
    )
    return charts


def percentile_chart(scenario: ScenarioReport) -> Chart:
    """Latency at each reported percentile, E2E and TTFT, from summary.json's distributions."""
    measured = scenario.measurements
    assert measured is not None
    positions = list(range(len(PERCENTILE_KEYS)))

    def values(distribution: Distribution | None) -> list[float | None]:
        if distribution is None or not distribution.count:
            return [None] * len(PERCENTILE_KEYS)
        return [distribution.percentiles_ms.get(key) for key in PERCENTILE_KEYS]

    series = [Series(f"E2E ({measured.e2e_latency.count} samples)", values(measured.e2e_latency))]
    if measured.ttft.count:
        series.append(Series(f"TTFT ({measured.ttft.count} samples)", values(measured.ttft)))
    ticks = [(float(position), key) for position, key in zip(positions, PERCENTILE_KEYS, strict=True)]
    return Chart(
        "Latency percentiles",
        "ms",
        [float(p) for p in positions],
        series,
        x_label="percentile",
        x_ticks=ticks,
    )


def counter_rows(scenario: ScenarioReport) -> list[tuple[str, str, list[str]]]:
    replicas = sorted(scenario.gateway_counters)
    keys = sorted(
        {
            (family, label)
            for counters in scenario.gateway_counters.values()
            for family, split in counters.items()
            for label in split
        }
    )
    return [
        (
            family,
            label or "-",
            [f"{scenario.gateway_counters[r].get(family, {}).get(label, 0):g}" for r in replicas],
        )
        for family, label in keys
    ]
