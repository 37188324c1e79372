from pathlib import Path
from textwrap import dedent

import pytest

from harness.metrics.definitions import METRICS
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


def test_misspelt_key_reported_once(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("  duration: 10s", "  durations: 10s"))
    assert [problem.field for problem in error.problems] == ["load.durations"]


def test_unrelated_unknown_key_keeps_missing_error(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("  duration: 10s", "  colour: red"))
    assert {problem.field for problem in error.problems} == {"load.colour", "load.duration"}


def test_invalid_name_explains_rule(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("name: example", "name: my scenario!"))
    (problem,) = error.problems
    assert problem.field == "name"
    assert "invalid name 'my scenario!'" in problem.message
    assert "letters, digits" in problem.message


def test_empty_slo_list_rejected(tmp_path: Path) -> None:
    text = VALID.split("slo:")[0] + "slo: []\n"
    error = load_error(tmp_path, text)
    (problem,) = error.problems
    assert problem.field == "slo"
    assert "at least one SLO or check" in problem.message


def test_request_model_not_served_rejected(tmp_path: Path) -> None:
    error = load_error(
        tmp_path, VALID.replace("      max_tokens: 8", "      max_tokens: 8\n      model: gpt-4o")
    )
    (problem,) = error.problems
    assert problem.field == "load.requests[0].model"
    assert problem.line == 11
    assert "'gpt-4o' is not served by this stack; served models: mock-llm" in problem.message


def test_ttft_objective_needs_streaming(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("  duration: 10s", "  duration: 10s\n  stream: false"))
    (problem,) = error.problems
    assert problem.field == "slo[0].metric"
    assert "needs streaming requests" in problem.message


def test_percentage_without_sign_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("max: 1%", "max: 0.5"))
    (problem,) = error.problems
    assert problem.field == "slo[1].max"
    assert "has no % sign" in problem.message


def test_plain_value_file_rejected(tmp_path: Path) -> None:
    error = load_error(tmp_path, "just some text\n")
    (problem,) = error.problems
    assert "holds a single plain value" in problem.message


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
    assert f"allowed metrics: {', '.join(METRICS)}" in problem.message
    assert "error_rate" in METRICS


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
    assert "at least one SLO or check" in problem.message


def test_open_model_needs_rate(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("  rate_per_s: 5\n", ""))
    (problem,) = error.problems
    assert problem.field == "load.rate_per_s"
    assert problem.line == 3
    assert "the open model needs rate_per_s" in problem.message


def test_closed_model_rejects_rate(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("model: open", "model: closed\n  users: 2"))
    (problem,) = error.problems
    assert "rate_per_s applies to the open model" in problem.message


def test_model_routing_to_unknown_upstream_rejected(tmp_path: Path) -> None:
    text = VALID.replace("load:", "stack:\n  models: {mock-llm: missing}\nload:")
    error = load_error(tmp_path, text)
    (problem,) = error.problems
    assert problem.field == "stack.models"
    assert problem.line == 4
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


@pytest.mark.parametrize(
    ("replace", "field", "message"),
    [
        (("users: 2", "users: true"), "load.users", "valid integer"),
        (("rate_per_s: 5", "rate_per_s: '5'"), "load.rate_per_s", "valid number"),
        (("rate_per_s: 5", "rate_per_s: .inf"), "load.rate_per_s", "finite number"),
        (("rate_per_s: 5", "rate_per_s: 1.0e-320"), "load.rate_per_s", "greater than or equal to 0.001"),
        (("max_tokens: 8", "max_tokens: 8\n      weight: .inf"), "load.requests[0].weight", "finite number"),
        (("duration: 10s", "duration: 10s\n  stream: yes"), "load.stream", "valid boolean"),
        (("duration: 10s", "duration: 10s\n  timeout: 9999h"), "load.timeout", "at most 1h"),
        (("duration: 10s", "duration: 999h"), "load.duration", "at most 168h"),
        (("content: hello", "content: 5"), "load.requests[0].messages[0].content", "valid string"),
        (("max: 1%", "max: 1%, gate: maybe"), "slo[1].gate", "'block' or 'warn'"),
    ],
)
def test_strict_values_rejected(tmp_path: Path, replace: tuple[str, str], field: str, message: str) -> None:
    text = (
        VALID.replace("model: open\n  rate_per_s: 5", "model: closed\n  users: 2")
        if "users" in replace[0]
        else VALID
    )
    error = load_error(tmp_path, text.replace(*replace))
    assert [problem.field for problem in error.problems] == [field]
    assert message in error.problems[0].message


def test_yaml_core_schema_keeps_words_as_strings(tmp_path: Path) -> None:
    error = load_error(tmp_path, VALID.replace("name: example", "name: example\non: 012"))
    (problem,) = error.problems
    assert problem.field == "on"
    assert "unknown field 'on'" in problem.message


def test_yaml_core_schema_reads_leading_zero_as_decimal(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path, VALID.replace("max_tokens: 8", "max_tokens: 012")))
    assert loaded.scenario.load.requests[0].max_tokens == 12


def test_yaml_merge_keys_supported(tmp_path: Path) -> None:
    text = VALID.replace(
        "    - messages:\n        - {role: user, content: hello}\n      max_tokens: 8",
        "    - &base\n      messages:\n        - {role: user, content: hello}\n      max_tokens: 8\n"
        "    - <<: *base\n      max_tokens: 16",
    )
    loaded = load_scenario(write(tmp_path, text))
    assert [kind.max_tokens for kind in loaded.scenario.load.requests] == [8, 16]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("? [a, b]\n: 1\n", "mapping key must be a plain value"),
        ("description: &r [*r]\n", "recursive alias"),
        ("name: \x01\n", "invalid character"),
    ],
)
def test_hostile_yaml_rejected_cleanly(tmp_path: Path, text: str, message: str) -> None:
    error = load_error(tmp_path, text)
    (problem,) = error.problems
    assert problem.line == 1
    assert message in problem.message


def test_alias_bomb_rejected_quickly(tmp_path: Path) -> None:
    levels = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for previous, current in zip("abcde", "bcdef", strict=True):
        levels.append(f"{current}: &{current} [" + ", ".join([f"*{previous}"] * 10) + "]")
    error = load_error(tmp_path, "\n".join(levels) + "\n")
    assert "more than 100000 values" in error.problems[0].message


def test_non_utf8_file_names_line(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_bytes(b"version: 1\nname: \xff\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    (problem,) = caught.value.problems
    assert problem.line == 2
    assert "not UTF-8" in problem.message


POLICY = """\
version: 1
name: policy
stack:
  replicas: 2
  tenants:
    gold: {limits: {requests_per_minute: 60}}
  cache: {enabled: true}
load:
  model: closed
  users: 1
  duration: 10s
  requests:
    - {tenant: gold, messages: [{role: user, content: hi}]}
faults:
  - {at: 2s, for: 3s, target: redis, action: kill}
checks:
  - {type: admitted, tenant: gold, max: 60}
  - {type: cache_isolation}
slo:
  - {metric: error_rate, max: 0%}
"""


def test_policy_scenario_loads(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, POLICY)).scenario
    assert scenario.faults[0].duration == 3.0
    assert scenario.checks[0].type == "admitted"
    assert scenario.with_duration_scale(0.5).faults[0].at == 1.0


@pytest.mark.parametrize(
    ("replace", "field", "message"),
    [
        (("target: redis", "target: gateway.2"), "faults[0].target", "2 gateway replica(s)"),
        (("target: redis", "target: upstream.ghost"), "faults[0].target", "no upstream 'ghost'"),
        (("target: redis", "target: database"), "faults[0].target", "invalid fault target 'database'"),
        (("at: 2s", "at: 12s"), "faults[0].at", "the load has already ended"),
        (("action: kill", "action: explode"), "faults[0].action", "'kill', 'pause' or 'restart'"),
        (
            ("tenant: gold, max", "tenant: lead, max"),
            "checks[0].tenant",
            "tenant 'lead' is not in stack.tenants",
        ),
        (
            ("cache: {enabled: true}", "cache: {enabled: false}"),
            "checks[1].type",
            "needs stack.cache.enabled",
        ),
        (("{tenant: gold, messages", "{tenant: silver, messages"), "load.requests[0].tenant", "'silver'"),
        (("type: cache_isolation", "type: cache_isolated"), "checks[1]", "cache_isolation"),
    ],
)
def test_policy_scenario_errors(tmp_path: Path, replace: tuple[str, str], field: str, message: str) -> None:
    error = load_error(tmp_path, POLICY.replace(*replace))
    assert [problem.field for problem in error.problems] == [field]
    assert message in error.problems[0].message


def test_several_problems_sorted_by_line(tmp_path: Path) -> None:
    text = VALID.replace("name: example", "name: example\ncolour: red").replace(
        "max_tokens: 8", "max_tokens: x"
    )
    error = load_error(tmp_path, text)
    lines = [problem.line for problem in error.problems]
    assert lines == sorted(lines)
    assert len(lines) == 2


@pytest.mark.parametrize(
    ("fault", "field", "message"),
    [
        ("{at: 2s, for: 3s, target: redis}", "faults[0]", "exactly one of action"),
        ("{at: 2s, for: 3s, target: redis, action: kill, toxic: {type: down}}", "faults[0]", "exactly one"),
        (
            "{at: 2s, for: 3s, target: redis, toxic: {type: latency}}",
            "faults[0].toxic.latency",
            "missing",
        ),
        ("{at: 2s, for: 3s, target: redis, toxic: {type: jam}}", "faults[0].toxic", "'latency'"),
        ("{at: 2s, for: 3s, target: gateway.0, toxic: {type: down}}", "faults[0].target", "proxy_gateways"),
        (
            "{at: 2s, for: 3s, target: redis, toxic: {type: slicer, average_size: 0}}",
            "faults[0].toxic.average_size",
            "greater than or equal to 1",
        ),
    ],
)
def test_network_fault_errors(tmp_path: Path, fault: str, field: str, message: str) -> None:
    text = POLICY.replace("  - {at: 2s, for: 3s, target: redis, action: kill}", f"  - {fault}")
    error = load_error(tmp_path, text)
    assert [problem.field for problem in error.problems] == [field]
    assert message in error.problems[0].message


def test_network_fault_loads(tmp_path: Path) -> None:
    fault = (
        "{at: 2s, for: 3s, target: upstream.primary, toxic: {type: bandwidth, rate: 50, stream: upstream}}"
    )
    scenario = load_scenario(
        write(tmp_path, POLICY.replace("  - {at: 2s, for: 3s, target: redis, action: kill}", f"  - {fault}"))
    ).scenario
    toxic = scenario.faults[0].toxic
    assert toxic is not None and toxic.type == "bandwidth"
    assert toxic.attributes() == {"rate": 50}
    assert scenario.faults[0].kind == "bandwidth"
