"""Verdict tables for the terminal and for summary.md."""

from __future__ import annotations

from harness.metrics.definitions import format_metric_value
from harness.reports.explain import describe_failed_requests
from harness.reports.schema import RunSummary, ScenarioReport, SLOResult

SLO_HEADERS = ("scenario", "SLO", "observed", "limit", "samples", "gate", "result")


def result_word(slo: SLOResult) -> str:
    if slo.status == "pass":
        return "PASS"
    word = "NO DATA" if slo.status == "no_data" else "FAIL"
    return word if slo.gate == "block" else f"{word} (warn)"


def slo_rows(summary: RunSummary) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for scenario in summary.scenarios:
        if scenario.error is not None:
            rows.append((scenario.name, "(scenario did not run)", "-", "-", "-", scenario.gate, "ERROR"))
        failed_trust = (
            [scenario.trust] if scenario.trust is not None and scenario.trust.status != "pass" else []
        )
        for slo in [*scenario.slos, *failed_trust]:
            rows.append(
                (
                    scenario.name,
                    slo.name,
                    format_metric_value(slo.metric, slo.observed),
                    format_metric_value(slo.metric, slo.limit),
                    str(slo.samples),
                    slo.gate,
                    result_word(slo),
                )
            )
        for check in scenario.checks:
            word = "PASS" if check.status == "pass" else ("FAIL" if check.gate == "block" else "FAIL (warn)")
            rows.append(
                (scenario.name, f"check {check.name}", _shorten(check.detail), "-", "-", check.gate, word)
            )
    return rows


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_text_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return lines


def _markdown_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(headers), "|" + "|".join("---" for _ in headers) + "|", *(line(row) for row in rows)]


def _scenario_overview(scenario: ScenarioReport) -> tuple[str, ...]:
    measured = scenario.measurements
    if measured is None:
        return (scenario.name, scenario.verdict.upper(), "-", "-", "-", "-", "-")
    return (
        scenario.name,
        scenario.verdict.upper(),
        str(measured.requests),
        f"{measured.errors} ({format_metric_value('error_rate', measured.error_rate)})",
        format_metric_value("e2e_latency", measured.e2e_latency.percentiles_ms.get("p95")),
        format_metric_value("ttft", measured.ttft.percentiles_ms.get("p95")),
        format_metric_value("throughput", measured.throughput_per_s),
    )


def render_markdown(summary: RunSummary) -> str:
    """Render the run as Markdown for a pull request comment or a Jenkins build description."""
    lines = [f"# slogate run {summary.run_id}: {summary.verdict.upper()}", ""]
    lines.append(
        f"Backend `{summary.backend}`, duration scale {summary.duration_scale:g}, "
        f"slogate {summary.slogate_version}, {len(summary.scenarios)} scenario(s)."
    )
    lines.append("")
    overview_headers = ("scenario", "verdict", "requests", "errors", "e2e p95", "TTFT p95", "throughput")
    lines += _markdown_table(overview_headers, [_scenario_overview(s) for s in summary.scenarios])
    lines.append("")
    lines.append("## SLOs")
    lines.append("")
    lines += _markdown_table(SLO_HEADERS, slo_rows(summary))
    for scenario in summary.scenarios:
        if scenario.error:
            lines += ["", f"## {scenario.name}: error", "", *_code_block(scenario.error)]
        elif scenario.measurements is not None and scenario.measurements.error_classes:
            failed = describe_failed_requests(scenario.measurements)
            lines += ["", f"## {scenario.name}: failed requests", "", *_code_block("\n".join(failed))]
        failed_checks = [check for check in scenario.checks if check.status != "pass"]
        if failed_checks:
            details = "\n".join(f"{check.name}: {check.detail}" for check in failed_checks)
            lines += ["", f"## {scenario.name}: failed checks", "", *_code_block(details)]
    if summary.errors:
        lines += ["", "## Errors", ""]
        for error in summary.errors:
            lines += [*_code_block(error), ""]
    lines.append("")
    return "\n".join(lines)


def _code_block(text: str) -> list[str]:
    fence = "````" if "```" in text else "```"
    return [fence, text.strip(), fence]
