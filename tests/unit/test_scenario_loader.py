from pathlib import Path
from textwrap import dedent

import pytest

from harness.scenario.errors import ScenarioError
from harness.scenario.loader import load_scenario

VALID = """\
version: 1
name: example
load:
  model: open
  rate_per_s: 5
  duration: 10s
  requests:
    - messages:
        - {role: user, content: hello}
      max_tokens: 8
slo:
  - {metric: ttft, percentile: 95, max: 500ms}
  - {metric: error_rate, max: 1%}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(dedent(text), encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> ScenarioError:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    return caught.value


def test_load_valid_scenario(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path, VALID))
    assert loaded.scenario.name == "example"
    assert loaded.scenario.load.duration == 10.0
    assert loaded.scenario.slo[0].limit == pytest.approx(0.5)
    assert loaded.scenario.slo[1].limit == pytest.approx(0.01)
    assert loaded.line_of("slo", 1) == 13


def test_unknown_key_names_file_line_field(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("  duration: 10s", "  durations: 10s"))
    problem = error.problems[0] if error.problems[0].field == "load.durations" else error.problems[1]
    assert problem.path.name == "scenario.yaml"
    assert problem.line == 6
    assert problem.field == "load.durations"
    assert "unknown field 'durations'" in problem.message
    assert "did you mean 'duration'" in problem.message
    assert "scenario.yaml:6:3: load.durations:" in str(error)


def test_unknown_key_also_reports_missing_field(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("  duration: 10s", "  durations: 10s"))
    fields = {problem.field for problem in error.problems}
    assert fields == {"load.durations", "load.duration"}


def test_wrong_type_names_field_and_value(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("max_tokens: 8", "max_tokens: eight"))
    (problem,) = error.problems
    assert problem.line == 10
    assert problem.field == "load.requests[0].max_tokens"
    assert "valid integer" in problem.message
    assert "'eight'" in problem.message


def test_bad_duration_unit_lists_allowed_units(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("duration: 10s", "duration: 10 parsecs"))
    (problem,) = error.problems
    assert problem.line == 6
    assert problem.field == "load.duration"
    assert "invalid duration '10 parsecs'" in problem.message
    assert "ms, s, m" in problem.message


def test_duration_without_unit_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("duration: 10s", "duration: 10"))
    (problem,) = error.problems
    assert problem.field == "load.duration"
    assert "has no unit" in problem.message


def test_broken_yaml_names_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("max_tokens: 8", "max_tokens: [8"))
    (problem,) = error.problems
    assert problem.path.name == "scenario.yaml"
    assert problem.line is not None and problem.line >= 10
    assert problem.message.startswith("invalid YAML")


def test_duplicate_key_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("name: example", "name: example\nname: other"))
    (problem,) = error.problems
    assert problem.line == 3
    assert "duplicate key 'name'" in problem.message


def test_unknown_metric_lists_allowed(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("metric: error_rate", "metric: error_rat"))
    (problem,) = error.problems
    assert problem.line == 13
    assert problem.field == "slo[1].metric"
    assert "allowed metrics: e2e_latency, ttft, error_rate, throughput" in problem.message


@pytest.mark.parametrize("percentile", ["101", "0", "p", "ninety"])
def test_invalid_percentile_rejected(tmp_path: Path, percentile: str) -> None:
    error = load_error(tmp_path, VALID.replace("percentile: 95", f"percentile: {percentile}"))
    (problem,) = error.problems
    assert problem.field == "slo[0].percentile"
    assert "percentile" in problem.message


def test_latency_slo_without_percentile_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("percentile: 95, ", ""))
    (problem,) = error.problems
    assert problem.field == "slo[0].percentile"
    assert "needs a percentile" in problem.message


def test_ratio_slo_with_percentile_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("metric: error_rate,", "metric: error_rate, percentile: 99,"))
    (problem,) = error.problems
    assert problem.field == "slo[1].percentile"


def test_slo_with_both_limits_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("max: 1%}", "max: 1%, min: 0%}"))
    (problem,) = error.problems
    assert problem.field == "slo[1]"
    assert "exactly one of max or min" in problem.message


def test_scenario_without_slo_rejected(tmp_path: Path) -> None:
    text = VALID.split("slo:")[0]
    error = load_error(tmp_path, text)
    (problem,) = error.problems
    assert problem.field == "slo"
    assert "required field is missing" in problem.message


def test_open_model_needs_rate(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("  rate_per_s: 5\n", ""))
    (problem,) = error.problems
    assert problem.field == "load"
    assert "rate_per_s" in problem.message


def test_closed_model_rejects_rate(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("model: open", "model: closed\n  users: 2"))
    (problem,) = error.problems
    assert "rate_per_s applies to the open model" in problem.message


def test_model_routing_to_unknown_upstream_rejected(tmp_path: Path) -> None:
    text = VALID.replace("load:", "stack:\n  models: {mock-llm: missing}\nload:")
    error = load_error(tmp_path, text)
    (problem,) = error.problems
    assert problem.field == "stack"
    assert "'missing'" in problem.message


def test_wrong_version_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("version: 1", "version: 2"))
    (problem,) = error.problems
    assert problem.field == "version"
    assert problem.line == 1


def test_empty_file_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, "")
    (problem,) = error.problems
    assert "this file is empty" in problem.message


def test_missing_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(tmp_path / "absent.yaml")


def test_several_problems_sorted_by_line(tmp_path: Path) -> None:
    text = VALID.replace("name: example", "name: example\ncolour: red").replace(
        "max_tokens: 8", "max_tokens: x"
    )
    error = load_error(tmp_path, text)
    lines = [problem.line for problem in error.problems]
    assert lines == sorted(lines)
    assert len(lines) == 2
