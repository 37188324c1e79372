"""Built-in scorers on their edge cases: Unicode forms, invalid JSON, schemas, tolerance bounds."""

from __future__ import annotations

import asyncio
from typing import Any

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
    assert result.reason is not None and "expected a bool, a number from 0 to 1 or a Score" in result.reason
