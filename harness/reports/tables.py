"""Verdict tables for the terminal and for summary.md."""

from __future__ import annotations

from harness.metrics.definitions import format_metric_value, format_usd
from harness.reports.evals import EVAL_HEADERS, cache_note, eval_failures, eval_rows
from harness.reports.explain import baseline_problems, describe_failed_requests, format_change
from harness.reports.schema import RunSummary, ScenarioReport, SLOResult

SLO_HEADERS = ("scenario", "SLO", "observed", "limit", "samples", "gate", "result")
MARKDOWN_SLO_HEADERS = ("scenario", "SLO", "observed", "limit", "samples", "burn rate", "gate", "result")


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


def _markdown_slo_rows(summary: RunSummary, with_baseline: bool) -> list[tuple[str, ...]]:
    """Return the terminal's rows with the burn rate added, and the baseline change under a baseline."""
    rows = []
    objectives = [slo for scenario in summary.scenarios for slo in [*scenario.slos, *_failed_trust(scenario)]]
    plain_rows = slo_rows(summary)
    burn = iter(objectives)
    for row in plain_rows:
        if row[1].startswith("check ") or row[1] == "(scenario did not run)":
            extra: tuple[str, ...] = ("-",) + (("-",) if with_baseline else ())
        else:
            slo = next(burn)
            extra = ("-" if slo.burn_rate is None else f"{slo.burn_rate:.3g}",)
            if with_baseline:
                extra += (_baseline_cell(slo),)
        rows.append((*row[:5], *extra, *row[5:]))
    return rows


def _failed_trust(scenario: ScenarioReport) -> list[SLOResult]:
    return [scenario.trust] if scenario.trust is not None and scenario.trust.status != "pass" else []


def _baseline_cell(slo: SLOResult) -> str:
    delta = slo.baseline
    if delta is None:
        return "-"
    text = f"{format_change(delta)} {delta.status.replace('_', ' ')}"
    if delta.p_value is not None:
        text += f" (p={delta.p_value:.2g}, n={delta.baseline_samples}/{delta.current_samples})"
    return text


def _cost_rows(summary: RunSummary) -> list[tuple[str, ...]]:
    def usd(amount: float | None) -> str:
        return "-" if amount is None else format_usd(amount)

    return [
        (
            scenario.name,
            str(scenario.cost.requests),
            usd(scenario.cost.total_usd),
            usd(scenario.cost.per_1k_requests_usd),
            f"{scenario.cost.cache_hits} ({usd(scenario.cost.cache_saved_usd)})",
        )
        for scenario in summary.scenarios
        if scenario.cost is not None
    ]


def _fault_rows(summary: RunSummary) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for scenario in summary.scenarios:
        for position, fault in enumerate(scenario.faults):
            recovery = fault.recovery
            if recovery is None:
                shown = "-"
            elif recovery.recovered:
                shown = format_metric_value("recovery_time", recovery.recovery_time_ms)
            else:
                shown = f"not shown: {recovery.reason}"
            name = fault.name or f"fault {position}"
            rows.append((scenario.name, name, f"{fault.action} {fault.target}", shown))
    return rows


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
    with_baseline = any(scenario.baseline is not None for scenario in summary.scenarios)
    headers: tuple[str, ...] = MARKDOWN_SLO_HEADERS
    if with_baseline:
        headers = (*headers[:6], "vs baseline", *headers[6:])
    lines += _markdown_table(headers, _markdown_slo_rows(summary, with_baseline))
    fault_rows = _fault_rows(summary)
    if fault_rows:
        lines += [
            "",
            "## Faults",
            "",
            *_markdown_table(("scenario", "fault", "action", "recovery time"), fault_rows),
        ]
    eval_table = [row for scenario in summary.scenarios for row in eval_rows(scenario)]
    if eval_table:
        lines += ["", "## Evals", "", *_markdown_table(EVAL_HEADERS, eval_table), ""]
        lines += [
            f"- {scenario.name}: {cache_note(scenario.eval)}"
            for scenario in summary.scenarios
            if scenario.eval
        ]
    cost_rows = _cost_rows(summary)
    if cost_rows:
        cost_headers = ("scenario", "requests", "cost", "per 1k requests", "cache hits (saved)")
        lines += ["", "## Cost", "", *_markdown_table(cost_headers, cost_rows)]
    for scenario in summary.scenarios:
        if scenario.error:
            lines += ["", f"## {scenario.name}: error", "", *_code_block(scenario.error)]
        elif scenario.measurements is not None and scenario.measurements.error_classes:
            failed = describe_failed_requests(scenario.measurements)
            lines += ["", f"## {scenario.name}: failed requests", "", *_code_block("\n".join(failed))]
        problems = baseline_problems(scenario)
        if problems:
            lines += ["", f"## {scenario.name}: baseline", "", *_code_block("\n".join(problems))]
        failed_evals = eval_failures(scenario.eval, blocking_only=False)
        if failed_evals:
            lines += ["", f"## {scenario.name}: failed evals", "", *_code_block("\n".join(failed_evals))]
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
