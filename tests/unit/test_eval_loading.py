"""Eval sections at load time: dataset paths and lines, scorer settings, custom scorers and baselines."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from textwrap import dedent

import pytest

from harness.evals import EvalItem, ScorerRegistry, register_scorer
from harness.evals.dataset import DatasetError, load_dataset
from harness.evals.registry import CustomScorer
from harness.reports.eval_baseline import compare_evals, eval_delta
from harness.reports.schema import EvalInterval
from harness.scenario.errors import ScenarioError
from harness.scenario.loader import load_scenario

SCENARIO = """\
    version: 1
    name: evals
    load:
      model: open
      rate_per_s: 1
      duration: 1s
      requests: [{messages: [{role: user, content: hi}]}]
    eval:
      datasets:
        - name: qa
          path: data/qa.jsonl
          scorers:
    """
ITEMS = '{"id": "a", "input": "2+2?", "expected": 4}\n{"id": "b", "input": "3+3?", "expected": 6}\n'


def write(tmp_path: Path, scorers: str, items: str = ITEMS, extra: str = "") -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "qa.jsonl").write_text(items, encoding="utf-8")
    path = tmp_path / "scenario.yaml"
    path.write_text(dedent(SCENARIO) + scorers + extra, encoding="utf-8")
    return path


def problems(path: Path, registry: ScorerRegistry | None = None) -> list[str]:
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path, registry)
    return [str(problem) for problem in raised.value.problems]


def test_dataset_path_relative_to_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "        - {type: numeric, min_pass_rate: 50%}\n")
    monkeypatch.chdir("/")
    loaded = load_scenario(path)
    assert loaded.eval_plan is not None
    (dataset,) = loaded.eval_plan.datasets
    assert dataset.path == tmp_path / "data" / "qa.jsonl"
    assert [item.id for item in dataset.items] == ["a", "b"]
    assert [scorer.name for scorer in dataset.scorers] == ["qa.numeric"]


def test_bad_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    items = ITEMS + '{"id": "c", "input": "4+4?", "expected": 8,}\n'
    (problem,) = problems(write(tmp_path, "        - {type: numeric}\n", items))
    assert problem.startswith(f"{tmp_path / 'data' / 'qa.jsonl'}:3:")
    assert "invalid JSON" in problem


def test_missing_dataset_is_load_error(tmp_path: Path) -> None:
    path = write(tmp_path, "        - {type: numeric}\n")
    (tmp_path / "data" / "qa.jsonl").unlink()
    (problem,) = problems(path)
    assert problem == f"{tmp_path / 'data' / 'qa.jsonl'}: dataset file not found"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('["not", "an", "object"]', "an item must be a JSON object, got list"),
        ('{"id": "x", "expected": 1}', "give exactly one of input (a user message's text) and messages"),
        ('{"id": "x", "input": "q", "answer": 1}', "unknown key 'answer'; allowed keys: id, input, messages"),
        ('{"id": "x", "messages": [{"role": "user"}]}', "messages[0] must be an object with string role"),
        ('{"id": "a", "input": "again"}', "item id 'a' is already used on line 1; ids must be unique"),
    ],
)
def test_invalid_items_rejected(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "a", "input": "q"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as raised:
        load_dataset(path)
    assert raised.value.problem.line == 2
    assert message in raised.value.problem.message


def test_invalid_regex_is_load_error(tmp_path: Path) -> None:
    (problem,) = problems(write(tmp_path, "        - {type: regex, pattern: '([0-9'}\n"))
    assert problem.startswith(f"{tmp_path / 'scenario.yaml'}:13:34: ")
    assert "eval.datasets[0].scorers[0].pattern: invalid regular expression '([0-9'" in problem


def test_invalid_json_schema_is_load_error(tmp_path: Path) -> None:
    (problem,) = problems(write(tmp_path, "        - {type: json_schema, schema: {type: nothing}}\n"))
    assert "eval.datasets[0].scorers[0].schema: invalid JSON Schema" in problem


def test_unknown_scorer_type_lists_types(tmp_path: Path) -> None:
    (problem,) = problems(write(tmp_path, "        - {type: bleu}\n"))
    assert "eval.datasets[0].scorers[0]" in problem
    assert "exact_match" in problem


def test_unimportable_custom_scorer_is_load_error(tmp_path: Path) -> None:
    (problem,) = problems(write(tmp_path, "        - {type: custom, function: 'no_such_module:score'}\n"))
    assert "scorers[0].function: cannot import module 'no_such_module'" in problem


def test_custom_scorer_by_dotted_path(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path, "        - {type: custom, function: 'os.path.isabs'}\n"))
    assert loaded.eval_plan is not None
    (scorer,) = loaded.eval_plan.datasets[0].scorers
    assert isinstance(scorer, CustomScorer)


def test_registered_scorer_by_name(tmp_path: Path) -> None:
    def nonempty(output: str, item: EvalItem) -> bool:
        return bool(output.strip())

    registry = ScorerRegistry()
    registry.register("nonempty", nonempty)
    loaded = load_scenario(write(tmp_path, "        - {type: custom, function: nonempty}\n"), registry)
    assert loaded.eval_plan is not None
    assert loaded.eval_plan.datasets[0].scorers[0].name == "qa.custom"


def test_register_scorer_fills_default_registry(tmp_path: Path) -> None:
    register_scorer("always_pass_for_loading_test", lambda output, item: True)
    loaded = load_scenario(
        write(tmp_path, "        - {type: custom, function: always_pass_for_loading_test}\n")
    )
    assert loaded.eval_plan is not None


def test_embedding_without_model_is_load_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tokenizers" else real_find_spec(name)
    )
    (problem,) = problems(write(tmp_path, "        - {type: embedding, min_mean: 0.8}\n"))
    assert "scorers[0].type: tokenizers not installed; the embedding scorer needs" in problem


def test_eval_model_must_be_served(tmp_path: Path) -> None:
    (problem,) = problems(write(tmp_path, "        - {type: numeric}\n", extra="  model: gpt-4o\n"))
    assert "eval.model: model 'gpt-4o' is not served by this stack" in problem


def test_duplicate_scorer_names_rejected(tmp_path: Path) -> None:
    scorers = "        - {type: numeric}\n        - {type: numeric, abs_tol: 1}\n"
    found = problems(write(tmp_path, scorers))
    assert len(found) == 2
    assert "scorer name 'qa.numeric' is used more than once" in found[0]


def test_eval_alone_satisfies_gate_requirement(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path, "        - {type: numeric, min_pass_rate: 50%}\n"))
    assert loaded.scenario.slo == []


def interval(estimate: float, low: float, high: float) -> EvalInterval:
    return EvalInterval(estimate=estimate, low=low, high=high, confidence=0.95, samples=30)


def test_baseline_regression_needs_interval_below() -> None:
    baseline = interval(0.9, 0.8, 1.0)
    assert eval_delta(interval(0.7, 0.6, 0.85), baseline, 0.02).status == "regression"
    assert eval_delta(interval(0.8, 0.7, 0.89), baseline, 0.02).status == "no_change"  # within tolerance
    assert eval_delta(interval(0.85, 0.7, 0.95), baseline, 0.02).status == "no_change"
    assert eval_delta(interval(1.0, 0.95, 1.0), interval(0.8, 0.7, 0.9), 0.02).status == "improvement"


def test_baseline_without_eval_not_tested() -> None:
    delta = eval_delta(interval(0.9, 0.8, 1.0), None, 0.02)
    assert delta.status == "not_tested"
    assert compare_evals(None, None) is None


def test_entry_point_scorer_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    from harness.evals import registry

    entry_point = EntryPoint(name="absolute_path", value="os.path:isabs", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(
        registry, "entry_points", lambda group: [entry_point] if group == entry_point.group else []
    )
    loaded = load_scenario(write(tmp_path, "        - {type: custom, function: absolute_path}\n"))
    assert loaded.eval_plan is not None
    (scorer,) = loaded.eval_plan.datasets[0].scorers
    assert isinstance(scorer, CustomScorer)
    assert scorer.function.__name__ == "isabs"


@pytest.mark.parametrize(
    ("scorer", "message"),
    [
        ("{type: contains, values: []}", "values must list at least one text"),
        ("{type: contains, values: [' ']}", "values[0] ' ' is empty after normalization"),
        ("{type: contains, values: [ok, '']}", "values[1] '' is empty after normalization"),
        ("{type: not_contains, values: ['  ']}", "values[0] '  ' is empty after normalization"),
    ],
)
def test_blank_contains_values_rejected(tmp_path: Path, scorer: str, message: str) -> None:
    (problem,) = problems(write(tmp_path, f"        - {scorer}\n"))
    assert "eval.datasets[0].scorers[0].values: " in problem
    assert message in problem


def test_unresolvable_schema_ref_is_load_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ref.schema.json").write_text(
        '{"type": "object", "properties": {"address": {"$ref": "address.schema.json"}}}', encoding="utf-8"
    )
    (problem,) = problems(
        write(tmp_path, "        - {type: json_schema, schema_file: data/ref.schema.json}\n")
    )
    assert problem.startswith(f"{tmp_path / 'scenario.yaml'}:13:")
    assert (
        "eval.datasets[0].scorers[0].schema_file: invalid JSON Schema: $ref 'address.schema.json'" in problem
    )
    assert (tmp_path / "data" / "address.schema.json").as_uri() in problem


def test_missing_pointer_ref_is_load_error(tmp_path: Path) -> None:
    scorer = "        - {type: json_schema, schema: {properties: {age: {$ref: '#/$defs/missing'}}}}\n"
    (problem,) = problems(write(tmp_path, scorer))
    assert "eval.datasets[0].scorers[0].schema: invalid JSON Schema: $ref '#/$defs/missing'" in problem


def test_schema_ref_resolves_beside_schema_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "address.schema.json").write_text('{"type": "object"}', encoding="utf-8")
    (tmp_path / "data" / "ref.schema.json").write_text(
        '{"type": "object", "properties": {"address": {"$ref": "address.schema.json"}}}', encoding="utf-8"
    )
    loaded = load_scenario(
        write(tmp_path, "        - {type: json_schema, schema_file: data/ref.schema.json}\n")
    )
    assert loaded.eval_plan is not None


@pytest.mark.parametrize(
    "line",
    [
        '{"input": "q", "expected": NaN}',
        '{"input": "q", "expected": -Infinity}',
        '{"input": "q", "expected": 1e999}',
    ],
)
def test_non_finite_expected_rejected(tmp_path: Path, line: str) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as raised:
        load_dataset(path)
    assert raised.value.problem.line == 1
    assert raised.value.problem.message.startswith("invalid JSON: ")


def test_dataset_splits_lines_on_newline_only(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    text = '{"id": "a", "input": "one\u2028two\u0085three"}\r\n{"id": "b", "input": "q"}\n'
    path.write_text(text, encoding="utf-8")
    first, second = load_dataset(path)
    assert first.messages[0]["content"] == "one\u2028two\u0085three"
    assert (second.id, second.line) == ("b", 2)


def test_item_fingerprint_covers_metadata() -> None:
    messages = ({"role": "user", "content": "q"},)
    plain = EvalItem(id="a", messages=messages, expected=1)
    tagged = EvalItem(id="a", messages=messages, expected=1, metadata={"unit": "km"})
    assert plain.fingerprint() != tagged.fingerprint()


def test_item_without_answer_has_no_reference() -> None:
    item = EvalItem(id="a", messages=({"role": "user", "content": "q"},))
    assert item.reference_text is None
