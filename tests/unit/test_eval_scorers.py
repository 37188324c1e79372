"""Built-in scorers on their edge cases: Unicode forms, invalid JSON, schemas, tolerance bounds."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.evals import EvalItem, Score, ScoringContext, as_score
from harness.evals.builtin import (
    Contains,
    ExactMatch,
    JsonMatch,
    JsonSchema,
    JsonValid,
    NotContains,
    Numeric,
    Regex,
    first_number,
)
from harness.evals.judge import LLMJudge, parse_judge_answer
from harness.evals.registry import CustomScorer
from harness.evals.scoring import Scorer
from harness.scenario.evals import Normalization

PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def item(expected: Any = None, reference: str | None = None, question: str = "q?") -> EvalItem:
    return EvalItem(
        id="i", messages=({"role": "user", "content": question},), expected=expected, reference=reference
    )


def score(scorer: Scorer, output: str, expected: Any = None, context: ScoringContext | None = None) -> Score:
    return asyncio.run(scorer.score(output, item(expected), context or ScoringContext()))


def test_exact_match_normalizes_case_and_whitespace() -> None:
    scorer = ExactMatch("e", Normalization())
    assert score(scorer, "  Paris\n", "paris").passed
    assert score(scorer, "New   York", "new york").passed


def test_exact_match_nfkc_folds_compatibility_forms() -> None:
    scorer = ExactMatch("e", Normalization())
    assert score(scorer, "ｆｉｌｅ", "file").passed  # full-width letters
    assert score(scorer, "ﬁle", "file").passed  # the fi ligature
    assert score(scorer, "café", "cafe\u0301").passed  # composed and decomposed é


def test_exact_match_strict_without_normalization() -> None:
    scorer = ExactMatch("e", Normalization(case=False, whitespace=False, nfkc=False))
    assert not score(scorer, "Paris", "paris").passed
    assert not score(scorer, "café", "cafe\u0301").passed
    result = score(scorer, " paris", "paris")
    assert result.reason is not None and "expected 'paris'" in result.reason


def test_exact_match_without_expected_fails() -> None:
    result = score(ExactMatch("e", Normalization()), "x", None)
    assert not result.passed
    assert result.reason == "the item has no expected answer"


def test_contains_defaults_to_expected() -> None:
    scorer = Contains("c", None, Normalization())
    assert score(scorer, "The answer is FORTY-TWO.", "forty-two").passed
    assert not score(scorer, "The answer is 41.", "forty-two").passed


def test_contains_needs_every_value() -> None:
    result = score(Contains("c", ["alpha", "beta"], Normalization()), "alpha only")
    assert not result.passed
    assert result.reason == "missing 'beta'"


def test_not_contains_rejects_any_value() -> None:
    scorer = NotContains("n", ["As an AI", "sorry"], Normalization())
    assert score(scorer, "Here you go.").passed
    result = score(scorer, "SORRY, I cannot.")
    assert not result.passed
    assert result.reason == "contains 'sorry'"


def test_regex_search_and_full_match() -> None:
    assert score(Regex("r", r"\d+", False, False), "about 12 km").passed
    assert not score(Regex("r", r"\d+", True, False), "about 12 km").passed
    assert score(Regex("r", r"-?\d+", True, False), " -12\n").passed
    assert score(Regex("r", "yes", False, True), "YES").passed


def test_json_valid_accepts_code_fence() -> None:
    assert score(JsonValid("j", True), '```json\n{"a": 1}\n```').passed
    assert not score(JsonValid("j", False), '```json\n{"a": 1}\n```').passed


def test_json_valid_reports_parse_error() -> None:
    result = score(JsonValid("j", True), '{"a": 1')
    assert not result.passed
    assert result.reason is not None and result.reason.startswith("invalid JSON:")


def test_json_schema_accepts_valid_document() -> None:
    assert score(JsonSchema("s", PERSON_SCHEMA, True), '{"name": "Ana", "age": 3}').passed


def test_json_schema_reports_mismatch_path() -> None:
    result = score(JsonSchema("s", PERSON_SCHEMA, True), '{"name": "Ana", "age": "3"}')
    assert not result.passed
    assert result.reason is not None and result.reason.startswith("schema mismatch at age:")


def test_json_schema_reports_missing_property() -> None:
    result = score(JsonSchema("s", PERSON_SCHEMA, True), '{"name": "Ana"}')
    assert result.reason is not None and "'age' is a required property" in result.reason


def test_json_schema_invalid_json_fails() -> None:
    result = score(JsonSchema("s", PERSON_SCHEMA, True), "name: Ana")
    assert not result.passed
    assert result.reason is not None and result.reason.startswith("invalid JSON")


def test_json_schema_rejects_invalid_schema() -> None:
    import jsonschema

    with pytest.raises(jsonschema.exceptions.SchemaError):
        JsonSchema("s", {"type": "no-such-type"}, True)


def test_json_match_ignores_key_order() -> None:
    scorer = JsonMatch("m", True)
    assert score(scorer, '{"age": 3, "name": "Ana"}', {"name": "Ana", "age": 3}).passed
    assert not score(scorer, '{"age": 4, "name": "Ana"}', {"name": "Ana", "age": 3}).passed


@pytest.mark.parametrize(
    ("output", "expected", "abs_tol", "rel_tol", "passed"),
    [
        ("42", 42, 0.0, 0.0, True),
        ("42.5", 42, 0.5, 0.0, True),  # exactly on the absolute bound
        ("42.51", 42, 0.5, 0.0, False),
        ("110", 100, 0.0, 0.1, True),  # exactly on the relative bound
        ("110.01", 100, 0.0, 0.1, False),
        ("-15", -15, 0.0, 0.0, True),
        ("0.75 kg", 0.75, 0.0, 0.0, True),
        ("1,024 bytes", 1024, 0.0, 0.0, True),
        ("3.4", 3.5, 0.2, 0.01, True),  # the larger of the two tolerances applies
    ],
)
def test_numeric_tolerance_bounds(
    output: str, expected: float, abs_tol: float, rel_tol: float, passed: bool
) -> None:
    assert score(Numeric("n", abs_tol, rel_tol), output, expected).passed is passed


def test_numeric_without_number_fails() -> None:
    result = score(Numeric("n", 0, 0), "forty-two", 42)
    assert not result.passed
    assert result.reason == "no number in 'forty-two'"


def test_numeric_reads_full_width_digits() -> None:
    assert first_number("答えは４２です") == 42.0


def test_judge_answer_parses_score_and_reason() -> None:
    assert parse_judge_answer("SCORE: 8\nREASON: close enough", 10) == (8.0, "close enough")
    assert parse_judge_answer("**Score**: 7", 10) == (7.0, "")


def test_judge_unparseable_answer_fails_with_reason() -> None:
    async def complete(messages: list[dict[str, Any]], model: str, params: dict[str, Any]) -> str:
        return "I think it is pretty good!"

    scorer = LLMJudge("j", "Is it right?", None, 10, 7, 64)
    result = score(scorer, "4", "4", ScoringContext(complete, "mock-llm"))
    assert not result.passed
    assert result.value == 0.0
    assert result.reason is not None and result.reason.startswith("unparseable judge answer")


def test_judge_score_outside_scale_fails() -> None:
    value, reason = parse_judge_answer("SCORE: 12", 10)
    assert value is None
    assert "outside 0 to 10" in reason


def test_judge_passes_at_pass_score() -> None:
    sent: list[list[dict[str, Any]]] = []

    async def complete(messages: list[dict[str, Any]], model: str, params: dict[str, Any]) -> str:
        sent.append(messages)
        return "SCORE: 7\nREASON: fine"

    result = score(
        LLMJudge("j", "Be exact.", None, 10, 7, 64), "4", "4", ScoringContext(complete, "mock-llm")
    )
    assert result.passed
    assert result.value == pytest.approx(0.7)
    assert "Be exact." in sent[0][0]["content"]
    assert "Candidate answer:\n4" in sent[0][1]["content"]


def test_judge_failed_request_fails_item() -> None:
    async def complete(messages: list[dict[str, Any]], model: str, params: dict[str, Any]) -> str:
        raise RuntimeError("HTTP 503: upstream unavailable")

    result = score(LLMJudge("j", "r", None, 10, 7, 64), "4", "4", ScoringContext(complete, "mock-llm"))
    assert not result.passed
    assert result.reason == "judge request failed: RuntimeError: HTTP 503: upstream unavailable"


@pytest.mark.parametrize(
    ("returned", "value", "passed"),
    [
        (True, 1.0, True),
        (False, 0.0, False),
        (0.8, 0.8, True),
        (0.2, 0.2, False),
        (Score(0.3, True), 0.3, True),
    ],
)
def test_custom_results_become_scores(returned: Any, value: float, passed: bool) -> None:
    result = as_score(returned)
    assert result.value == value
    assert result.passed is passed


def test_custom_result_out_of_range_fails() -> None:
    result = as_score(7)
    assert not result.passed
    assert result.reason is not None and "must be a number from 0 to 1" in result.reason


@pytest.mark.parametrize(
    ("output", "expected", "abs_tol", "rel_tol"),
    [("1.1", 1.0, 0.1, 0.0), ("72.072", 72, 0.0, 0.001), ("0.3", 0.1, 0.2, 0.0)],
)
def test_numeric_difference_equal_to_tolerance_passes(
    output: str, expected: float, abs_tol: float, rel_tol: float
) -> None:
    assert score(Numeric("n", abs_tol, rel_tol), output, expected).passed


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("\u22125", -5.0),  # minus sign
        ("\u20133.5 degrees", -3.5),  # en dash
        ("\uff0d7", -7.0),  # full-width hyphen-minus
        ("COVID-19 cases", 19.0),
        ("3-9", 3.0),
        ("x = -2", -2.0),
        ("1,234", 1234.0),
        ("1,234,567.5", 1234567.5),
        ("1,2345", 1.0),
        ("1,23", 1.0),
        ("+4", 4.0),
    ],
)
def test_first_number_signs_and_separators(text: str, number: float) -> None:
    assert first_number(text) == number


def test_first_number_ignores_infinite_value() -> None:
    assert first_number("1e999") is None


@pytest.mark.parametrize(
    ("output", "expected"),
    [("true", 1), ("1", True), ("[1, 0]", [True, False]), ('{"a": false}', {"a": 0}), ("0", False)],
)
def test_json_match_bool_is_not_number(output: str, expected: Any) -> None:
    assert not score(JsonMatch("j", True), output, expected).passed


def test_json_match_int_equals_float() -> None:
    assert score(JsonMatch("j", True), '{"n": 1.0}', {"n": 1}).passed


@pytest.mark.parametrize("output", ["NaN", '{"x": Infinity}', "[-Infinity]"])
def test_json_scorers_reject_non_finite_constants(output: str) -> None:
    for scorer in (JsonValid("v", True), JsonSchema("s", {}, True), JsonMatch("m", True)):
        result = score(scorer, output, {"x": 1})
        assert not result.passed
        assert result.reason is not None and "is not a JSON number" in result.reason


def test_json_scorers_reject_duplicate_keys() -> None:
    for scorer in (JsonValid("v", True), JsonSchema("s", {}, True), JsonMatch("m", True)):
        result = score(scorer, '{"a": 1, "a": 2}', {"a": 2})
        assert not result.passed
        assert result.reason == "invalid JSON: duplicate key 'a' in an object"


def test_contains_blank_expected_fails() -> None:
    for expected in ("", "   "):
        result = score(Contains("c", None, Normalization()), "any output", expected)
        assert not result.passed
        assert result.reason is not None and "empty after normalization" in result.reason


@pytest.mark.parametrize(
    "answer",
    [
        "SCORE: 9 (out of 100)",
        "Score: 10%",
        "SCORE: 3-9",
        "SCORE: 9\nSCORE: 2",
        "SCORE: 9\nSCORE: 9",
        "score = 9, but I can't judge",
        "SCORE: 9/100",
        "SCORE: -1",
        "The score is high.",
    ],
)
def test_judge_parser_rejects_ambiguous_answers(answer: str) -> None:
    value, reason = parse_judge_answer(answer, 10)
    assert value is None
    assert reason.startswith("unparseable judge answer")


@pytest.mark.parametrize(
    ("answer", "value"),
    [("SCORE: 7\nREASON: fine", 7.0), ("**Score:** 7.5", 7.5), ("score: 8/10", 8.0), ("SCORE: 0", 0.0)],
)
def test_judge_parser_accepts_one_score_line(answer: str, value: float) -> None:
    assert parse_judge_answer(answer, 10)[0] == value


def test_judge_without_reference_fails_item() -> None:
    async def complete(messages: list[dict[str, Any]], model: str, params: dict[str, Any]) -> str:
        raise AssertionError("the judge is not called without a reference")

    judge = LLMJudge("j", "rubric", "m", 10, 7, 64)
    result = asyncio.run(judge.score("an answer", item(), ScoringContext(complete=complete)))
    assert not result.passed
    assert result.reason == "no expected answer or reference"


def test_judge_failed_request_is_transient() -> None:
    async def complete(messages: list[dict[str, Any]], model: str, params: dict[str, Any]) -> str:
        raise RuntimeError("HTTP 503")

    judge = LLMJudge("j", "rubric", "m", 10, 7, 64)
    assert asyncio.run(judge.score("4", item("4"), ScoringContext(complete=complete))).transient


@pytest.mark.parametrize(
    ("returned", "reason"),
    [
        (Score(1.5, True), "value 1.5"),
        (Score(float("nan"), True), "value nan"),
        (Score(-0.1, False), "value -0.1"),
        (float("nan"), "must be a number from 0 to 1"),
        (-0.5, "must be a number from 0 to 1"),
    ],
)
def test_custom_invalid_score_fails_item(returned: Any, reason: str) -> None:
    result = as_score(returned)
    assert not result.passed
    assert result.reason is not None and reason in result.reason


@pytest.mark.parametrize(
    ("returned", "value", "passed"),
    [
        (np.bool_(True), 1.0, True),
        (np.bool_(False), 0.0, False),
        (np.float64(0.75), 0.75, True),
        (np.float32(0.25), 0.25, False),
        (np.int64(1), 1.0, True),
        (Score(np.float64(0.9), np.bool_(True)), 0.9, True),  # type: ignore[arg-type]
    ],
)
def test_custom_numpy_results_accepted(returned: Any, value: float, passed: bool) -> None:
    result = as_score(returned)
    assert result.value == pytest.approx(value)
    assert result.passed is passed


def test_custom_scorer_exception_is_transient() -> None:
    def broken(output: str, item: EvalItem) -> bool:
        raise KeyError("missing")

    scorer = CustomScorer("c", broken, {}, "broken", "1")
    assert asyncio.run(scorer.score("x", item(), ScoringContext())).transient


def test_json_schema_resolves_ref_beside_file(tmp_path: Path) -> None:
    (tmp_path / "age.schema.json").write_text('{"type": "integer"}', encoding="utf-8")
    schema = {"type": "object", "properties": {"age": {"$ref": "age.schema.json"}}}
    scorer = JsonSchema("s", schema, True, (tmp_path / "person.schema.json").as_uri())
    assert score(scorer, '{"age": 3}').passed
    assert not score(scorer, '{"age": "3"}').passed


def test_json_schema_ref_removed_after_load_fails_item(tmp_path: Path) -> None:
    referenced = tmp_path / "age.schema.json"
    referenced.write_text('{"type": "integer"}', encoding="utf-8")
    schema = {"type": "object", "properties": {"age": {"$ref": "age.schema.json"}}}
    scorer = JsonSchema("s", schema, True, (tmp_path / "person.schema.json").as_uri())
    referenced.unlink()
    result = score(scorer, '{"age": 3}')
    assert not result.passed
    assert result.reason is not None and result.reason.startswith("the JSON Schema could not be applied")
