"""Scorers that compare text and JSON: exact match, contains, regex, JSON and numeric tolerance."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from pathlib import Path
from typing import Any

import jsonschema
from referencing.exceptions import Unresolvable

from harness.evals.dataset import EvalItem
from harness.evals.schema_refs import local_registry, resolve_references, with_base_uri
from harness.evals.scoring import Score, SyncScorer
from harness.scenario.evals import Normalization

_WHITESPACE = re.compile(r"\s+")
# Minus signs besides the hyphen-minus: minus sign, figure dash, en dash, small and full-width
# hyphen-minus (NFKC already maps the last two to "-").
_MINUS_SIGNS = "\u2212\u2012\u2013\ufe63\uff0d"
# A sign counts only where no letter or digit precedes it, so "COVID-19" reads as 19 and "3-9" as 3.
# A comma is a thousands separator only when every group after it has exactly three digits.
# Any other comma ends the number, so "1,2345" reads as 1 and "1,234.5" as 1234.5.
_NUMBER = re.compile(
    rf"(?P<sign>(?<![^\W_])[-+{_MINUS_SIGNS}])?"
    r"(?P<digits>(?:\d{1,3}(?:,\d{3})+(?!\d|,\d)|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+)"
)
# Differences within this fraction of the tolerance count as equal to it, so that binary rounding
# of decimal inputs (1.1 - 1.0 is 0.10000000000000009) does not fail a difference equal to the bound.
_TOLERANCE_EPSILON = 1e-9
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


class _StrictJsonError(ValueError):
    """A document that Python's json module reads but RFC 8259 does not allow."""


def _reject_constant(name: str) -> Any:
    raise _StrictJsonError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise _StrictJsonError(f"duplicate key {key!r} in an object")
        value[key] = item
    return value


def parse_json_output(output: str, strip_code_fence: bool) -> tuple[Any, str | None]:
    """Return the JSON value of ``output`` and None, or None and why it is not valid JSON.

    NaN, Infinity and -Infinity, which ``json.loads`` accepts by default, are invalid, and so is
    an object with a repeated key, whose value would otherwise be the last one silently.
    """
    text = output.strip()
    if strip_code_fence:
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1).strip()
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except _StrictJsonError as exc:
        return None, f"invalid JSON: {exc}"


def json_equal(left: Any, right: Any) -> bool:
    """Compare two JSON values by JSON type: true is not 1, but the numbers 1 and 1.0 are equal."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[key], right[key]) for key in left)
    if isinstance(left, int | float | list | dict) or isinstance(right, int | float | list | dict):
        return False
    return bool(left == right)


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
        required = self.values
        if required is None:
            expected = expected_text(item)
            if expected is None:
                return Score.of(False, "the item has no expected answer and the scorer no values")
            if not normalize(expected, self.rules):
                reason = f"the item's expected answer {expected!r} is empty after normalization"
                return Score.of(False, reason)
            required = [expected]
        text = normalize(output, self.rules)
        missing = [value for value in required if normalize(value, self.rules) not in text]
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

    def __init__(
        self, name: str, schema: dict[str, Any], strip_code_fence: bool, base_uri: str | None = None
    ) -> None:
        """Check the schema and every ``$ref`` in it, resolved against ``base_uri`` (a folder's or
        file's ``file:`` URI; default: the current folder); raise SchemaError or SchemaReferenceError."""
        jsonschema.Draft202012Validator.check_schema(schema)
        rooted = with_base_uri(schema, base_uri or Path.cwd().as_uri() + "/")
        references = resolve_references(rooted)
        options = {"schema": schema, "strip_code_fence": strip_code_fence, "references": references}
        super().__init__(name, options)
        self.validator = jsonschema.Draft202012Validator(rooted, registry=local_registry())
        self.strip_code_fence = strip_code_fence

    def check(self, output: str, item: EvalItem) -> Score:
        value, problem = parse_json_output(output, self.strip_code_fence)
        if problem is not None:
            return Score.of(False, problem)
        try:
            errors = list(self.validator.iter_errors(value))
        except Unresolvable as exc:  # a $ref to a file that was removed or changed since loading
            return Score.unscored(f"the JSON Schema could not be applied: {exc}")
        error = jsonschema.exceptions.best_match(errors)
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
        reason = f"expected {json.dumps(expected)}, got {json.dumps(value)}"
        return Score.of(json_equal(value, expected), reason)


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
        within = difference <= allowed or math.isclose(difference, allowed, rel_tol=_TOLERANCE_EPSILON)
        return Score.of(
            within,
            f"{got:g} differs from {expected:g} by {difference:g} (allowed {allowed:g})",
        )


def first_number(text: str) -> float | None:
    """Return the first decimal number in ``text``, with thousands separators removed, or None.

    A number too large for a float (such as 1e999) counts as no number.
    """
    match = _NUMBER.search(unicodedata.normalize("NFKC", text))
    if match is None:
        return None
    value = float(match["digits"].replace(",", ""))
    if match["sign"] is not None and match["sign"] != "+":
        value = -value
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
