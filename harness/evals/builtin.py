"""Scorers that compare text and JSON: exact match, contains, regex, JSON and numeric tolerance."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any

import jsonschema

from harness.evals.dataset import EvalItem
from harness.evals.scoring import Score, SyncScorer
from harness.scenario.evals import Normalization

_WHITESPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(.*?)\n?```$", re.DOTALL)


def normalize(text: str, rules: Normalization) -> str:
    """Apply NFKC, then casefold, then whitespace collapsing, as ``rules`` ask."""
    if rules.nfkc:
        text = unicodedata.normalize("NFKC", text)
    if rules.case:
        text = text.casefold()
    if rules.whitespace:
        text = _WHITESPACE.sub(" ", text).strip()
    return text


def expected_text(item: EvalItem) -> str | None:
    expected = item.expected
    if expected is None:
        return None
    if isinstance(expected, str):
        return expected
    return json.dumps(expected, ensure_ascii=False)


def parse_json_output(output: str, strip_code_fence: bool) -> tuple[Any, str | None]:
    """Return the JSON value of ``output`` and None, or None and why it is not valid JSON."""
    text = output.strip()
    if strip_code_fence:
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1).strip()
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


class ExactMatch(SyncScorer):
    type = "exact_match"

    def __init__(self, name: str, rules: Normalization) -> None:
        super().__init__(name, {"normalize": rules.model_dump()})
        self.rules = rules

    def check(self, output: str, item: EvalItem) -> Score:
        expected = expected_text(item)
        if expected is None:
            return Score.of(False, "the item has no expected answer")
        got, want = normalize(output, self.rules), normalize(expected, self.rules)
        return Score.of(got == want, f"expected {want!r}, got {_shortened(got)!r}")


class Contains(SyncScorer):
    type = "contains"

    def __init__(self, name: str, values: list[str] | None, rules: Normalization) -> None:
        super().__init__(name, {"values": values, "normalize": rules.model_dump()})
        self.values = values
        self.rules = rules

    def check(self, output: str, item: EvalItem) -> Score:
        wanted = self.values
        if wanted is None:
            expected = expected_text(item)
            if expected is None:
                return Score.of(False, "the item has no expected answer and the scorer no values")
            wanted = [expected]
        text = normalize(output, self.rules)
        missing = [value for value in wanted if normalize(value, self.rules) not in text]
        return Score.of(not missing, f"missing {', '.join(repr(value) for value in missing)}")


class NotContains(SyncScorer):
    type = "not_contains"

    def __init__(self, name: str, values: list[str], rules: Normalization) -> None:
        super().__init__(name, {"values": values, "normalize": rules.model_dump()})
        self.values = values
        self.rules = rules

    def check(self, output: str, item: EvalItem) -> Score:
        text = normalize(output, self.rules)
        found = [value for value in self.values if normalize(value, self.rules) in text]
        return Score.of(not found, f"contains {', '.join(repr(value) for value in found)}")


class Regex(SyncScorer):
    type = "regex"

    def __init__(self, name: str, pattern: str, full_match: bool, ignore_case: bool) -> None:
        super().__init__(name, {"pattern": pattern, "full_match": full_match, "ignore_case": ignore_case})
        self.pattern = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        self.full_match = full_match

    def check(self, output: str, item: EvalItem) -> Score:
        if self.full_match:
            matched = self.pattern.fullmatch(output.strip()) is not None
        else:
            matched = self.pattern.search(output) is not None
        return Score.of(matched, f"no match for /{self.pattern.pattern}/ in {_shortened(output)!r}")


class JsonValid(SyncScorer):
    type = "json_valid"

    def __init__(self, name: str, strip_code_fence: bool) -> None:
        super().__init__(name, {"strip_code_fence": strip_code_fence})
        self.strip_code_fence = strip_code_fence

    def check(self, output: str, item: EvalItem) -> Score:
        _, problem = parse_json_output(output, self.strip_code_fence)
        return Score.of(problem is None, problem)


class JsonSchema(SyncScorer):
    type = "json_schema"

    def __init__(self, name: str, schema: dict[str, Any], strip_code_fence: bool) -> None:
        super().__init__(name, {"schema": schema, "strip_code_fence": strip_code_fence})
        jsonschema.Draft202012Validator.check_schema(schema)
        self.validator = jsonschema.Draft202012Validator(schema)
        self.strip_code_fence = strip_code_fence

    def check(self, output: str, item: EvalItem) -> Score:
        value, problem = parse_json_output(output, self.strip_code_fence)
        if problem is not None:
            return Score.of(False, problem)
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(value))
        if error is None:
            return Score.of(True)
        where = "/".join(str(part) for part in error.absolute_path) or "the document"
        return Score.of(False, f"schema mismatch at {where}: {error.message}")


class JsonMatch(SyncScorer):
    type = "json_match"

    def __init__(self, name: str, strip_code_fence: bool) -> None:
        super().__init__(name, {"strip_code_fence": strip_code_fence})
        self.strip_code_fence = strip_code_fence

    def check(self, output: str, item: EvalItem) -> Score:
        value, problem = parse_json_output(output, self.strip_code_fence)
        if problem is not None:
            return Score.of(False, problem)
        expected = item.expected
        return Score.of(value == expected, f"expected {json.dumps(expected)}, got {json.dumps(value)}")


class Numeric(SyncScorer):
    type = "numeric"

    def __init__(self, name: str, abs_tol: float, rel_tol: float) -> None:
        super().__init__(name, {"abs_tol": abs_tol, "rel_tol": rel_tol})
        self.abs_tol = abs_tol
        self.rel_tol = rel_tol

    def check(self, output: str, item: EvalItem) -> Score:
        expected = _as_number(item.expected)
        if expected is None:
            return Score.of(False, f"the item's expected answer {item.expected!r} is not a number")
        got = first_number(output)
        if got is None:
            return Score.of(False, f"no number in {_shortened(output)!r}")
        allowed = max(self.abs_tol, self.rel_tol * abs(expected))
        difference = abs(got - expected)
        return Score.of(
            difference <= allowed,
            f"{got:g} differs from {expected:g} by {difference:g} (allowed {allowed:g})",
        )


def first_number(text: str) -> float | None:
    """Return the first decimal number in ``text``, with thousands separators removed, or None."""
    match = _NUMBER.search(unicodedata.normalize("NFKC", text))
    if match is None:
        return None
    value = float(match.group().replace(",", ""))
    return value if math.isfinite(value) else None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return first_number(value)
    return None


def _shortened(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
