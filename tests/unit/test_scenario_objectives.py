"""Loading objectives: both forms, phases, cost limits, and errors that name file, line and field."""

from pathlib import Path
from textwrap import dedent

import pytest

from harness.scenario.errors import ScenarioError
from harness.scenario.loader import load_scenario
from harness.scenario.slo import OpenSLOSpec, SLOSpec

HEAD = """\
version: 1
name: objectives
load:
  model: open
  rate_per_s: 10
  duration: 10s
  requests:
    - messages: [{role: user, content: hi}]
"""
FAULTS = """\
faults:
  - {at: 2s, for: 2s, target: redis, action: kill, name: redis-kill}
  - {at: 6s, for: 1s, target: upstream.primary, action: pause}
"""


def load(tmp_path: Path, body: str, faults: str = FAULTS) -> list[SLOSpec | OpenSLOSpec]:
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + faults + dedent(body), encoding="utf-8")
    return load_scenario(path).scenario.slo


def problems(tmp_path: Path, body: str, faults: str = FAULTS) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load(tmp_path, body, faults)
    return [str(problem) for problem in caught.value.problems]


def test_short_and_long_forms_load(tmp_path: Path) -> None:
    slos = load(
        tmp_path,
        """\
        slo:
          - {metric: ttft, percentile: 95, max: 300ms, phase: during, fault: redis-kill}
          - thresholdMetric: {metric: ttft, op: lte, value: 300ms}
            target: 95%
            budgetingMethod: Occurrences
          - ratioMetric: {bad: errors, total: judged}
            target: 99%
            phase: after
            fault: 1
          - {metric: recovery_time, max: 5s, fault: 0}
        """,
    )
    assert [type(slo).__name__ for slo in slos] == ["SLOSpec", "OpenSLOSpec", "OpenSLOSpec", "SLOSpec"]
    assert [slo.metric for slo in slos] == ["ttft", "ttft", "error_rate", "recovery_time"]


def test_unknown_metric_names_line_and_field(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "slo:\n  - {metric: latency, percentile: 95, max: 1s}\n")
    assert problem.endswith(
        "s.yaml:13:14: slo[0].metric: unknown metric 'latency'; allowed metrics: "
        + problem.split("allowed metrics: ")[1]
    )


def test_unknown_comparator_names_field(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "slo:\n  - {metric: ttft, percentile: 95, below: 1s}\n")
    assert "s.yaml:13:36: slo[0].below: unknown field 'below'" in problem


def test_invalid_percentile_names_field(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "slo:\n  - {metric: ttft, percentile: p0, max: 1s}\n")
    assert "s.yaml:13:32: slo[0].percentile: percentile 'p0' is outside (0, 100]" in problem


def test_long_form_unknown_op_names_nested_field(tmp_path: Path) -> None:
    body = """\
    slo:
      - thresholdMetric: {metric: ttft, op: lt, value: 1s}
        target: 95%
    """
    (problem,) = problems(tmp_path, body)
    assert "s.yaml:13:41: slo[0].thresholdMetric.op: Input should be 'lte' or 'gte'; got 'lt'" in problem


def test_long_form_unknown_metric_names_nested_field(tmp_path: Path) -> None:
    body = """\
    slo:
      - thresholdMetric: {metric: goodput, op: lte, value: 1s}
        target: 95%
    """
    (problem,) = problems(tmp_path, body)
    assert (
        "slo[0].thresholdMetric.metric: thresholdMetric needs a per-request metric, got 'goodput'" in problem
    )


def test_long_form_needs_target(tmp_path: Path) -> None:
    body = """\
    slo:
      - ratioMetric: {good: successes, total: judged}
    """
    (problem,) = problems(tmp_path, body)
    assert "slo[0].target: required field is missing" in problem


def test_phase_needs_fault_when_several(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "slo:\n  - {metric: error_rate, max: 1%, phase: during}\n")
    assert (
        "s.yaml:13:5: slo[0]: this scenario has 2 faults; "
        "add fault: with a position from 0 to 1 or a name (redis-kill)" in problem
    )


def test_phase_without_faults_rejected(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "slo:\n  - {metric: error_rate, max: 1%, phase: after}\n", faults="")
    assert "slo[0]: phase 'after' needs a fault, but this scenario has none" in problem


def test_unknown_fault_name_rejected(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "slo:\n  - {metric: error_rate, max: 1%, phase: after, fault: nope}\n")
    assert "slo[0].fault: no fault 'nope'; use a position from 0 to 1 or a name (redis-kill)" in problem


def test_recovery_time_takes_no_phase(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "slo:\n  - {metric: recovery_time, max: 5s, phase: after, fault: 0}\n")
    assert "slo[0].phase: recovery_time is measured after its fault ends" in problem


def test_single_fault_is_the_default(tmp_path: Path) -> None:
    faults = "faults:\n  - {at: 2s, for: 2s, target: redis, action: kill}\n"
    (slo,) = load(tmp_path, "slo:\n  - {metric: error_rate, max: 1%, phase: during}\n", faults=faults)
    assert slo.fault is None


def test_cost_section_becomes_objectives(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    body = "slo:\n  - {metric: error_rate, max: 1%}\n"
    body += "cost:\n  max_usd_per_1k_requests: $0.50\n  max_usd_total: 2 USD\n"
    path.write_text(HEAD + body, encoding="utf-8")
    loaded = load_scenario(path)
    objectives = loaded.scenario.cost_objectives()
    assert [(slo.metric, slo.limit) for slo, _ in objectives] == [
        ("cost_per_1k_requests", 0.5),
        ("cost_total", 2.0),
    ]
    assert [loaded.line_of(*location) for _, location in objectives] == [12, 13]


def test_invalid_cost_limit_names_field(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "slo:\n  - {metric: error_rate, max: 1%}\ncost: {max_usd_total: cheap}\n")
    assert "cost.max_usd_total: invalid amount 'cheap'" in problem


def test_cost_metric_in_slo_list(tmp_path: Path) -> None:
    (slo,) = load(tmp_path, "slo:\n  - {metric: cost_per_1k_requests, max: $0.25}\n")
    assert slo.limit == 0.25
