"""Custom scorers by name, and building every scorer from its scenario settings.

A custom scorer is a callable ``function(output, item, **options)``, plain or a coroutine
function. It returns a bool (pass or fail), a number from 0 to 1 (the score, which passes at
0.5 or above), or a ``Score``. The ``custom`` scorer's ``function`` names it: first a name registered
with ``register_scorer`` (or returned by the ``pytest_slogate_eval_scorers`` hook), then a
``slogate.scorers`` entry point, then a dotted path, ``module:function`` or ``module.function``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import numbers
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np

from harness.evals.builtin import (
    Contains,
    ExactMatch,
    JsonMatch,
    JsonSchema,
    JsonValid,
    NotContains,
    Numeric,
    Regex,
    normalize,
)
from harness.evals.dataset import EvalItem
from harness.evals.embedding import EmbeddingModelMissing, EmbeddingSimilarity
from harness.evals.judge import LLMJudge
from harness.evals.schema_refs import SchemaReferenceError
from harness.evals.scoring import Score, Scorer, ScoringContext
from harness.scenario import evals as spec

ENTRY_POINT_GROUP = "slogate.scorers"
CUSTOM_PASS_SCORE = 0.5
ScorerFunction = Callable[..., Any]


class ScorerBuildError(Exception):
    """A scorer that cannot be built; ``field`` is the scorer key at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ScorerRegistry:
    """Custom scorer functions by name. Copy it to add names for one run only."""

    def __init__(self, functions: Mapping[str, ScorerFunction] | None = None) -> None:
        self._functions: dict[str, ScorerFunction] = dict(functions or {})

    def register(self, name: str, function: ScorerFunction) -> None:
        if not callable(function):
            raise TypeError(f"scorer {name!r} must be callable, got {type(function).__name__}")
        self._functions[name] = function

    def copy(self) -> ScorerRegistry:
        return ScorerRegistry(self._functions)

    def names(self) -> list[str]:
        return sorted(self._functions)

    def resolve(self, reference: str) -> ScorerFunction:
        """Return the callable ``reference`` names; raise ScorerBuildError saying where it looked."""
        if reference in self._functions:
            return self._functions[reference]
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            if entry_point.name == reference:
                return _callable(entry_point.load(), reference)
        return _callable(_import_dotted(reference), reference)


def _import_dotted(reference: str) -> Any:
    if ":" in reference:
        module_name, _, attribute = reference.partition(":")
    else:
        module_name, _, attribute = reference.rpartition(".")
    if not module_name or not attribute:
        raise ScorerBuildError(
            f"no registered scorer or {ENTRY_POINT_GROUP} entry point {reference!r}, and it is not a "
            "dotted path such as package.module:function",
            "function",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ScorerBuildError(
            f"cannot import module {module_name!r} of scorer {reference!r}: {exc}", "function"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ScorerBuildError(f"module {module_name!r} has no attribute {attribute!r}", "function")
        target = getattr(target, part)
    return target


def _callable(target: Any, reference: str) -> ScorerFunction:
    if not callable(target):
        raise ScorerBuildError(
            f"scorer {reference!r} is a {type(target).__name__}, not a callable", "function"
        )
    return target  # type: ignore[no-any-return]


class CustomScorer(Scorer):
    """Wraps a custom callable; its result becomes a Score."""

    def __init__(
        self, name: str, function: ScorerFunction, options: dict[str, Any], reference: str, version: str
    ) -> None:
        super().__init__(name, {"function": reference, "options": options})
        self.type = "custom"
        self.version = version
        self.function = function
        self.call_options = options

    async def score(self, output: str, item: EvalItem, context: ScoringContext) -> Score:
        try:
            result = self.function(output, item, **self.call_options)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # a crashing scorer fails that item, with the exception as the reason
            return Score.unscored(f"scorer raised {type(exc).__name__}: {exc}")
        return as_score(result)


def as_score(result: Any) -> Score:
    """Turn a custom scorer's bool, number or Score into a Score.

    numpy booleans and numbers count as bools and numbers. A number, or a Score's value, outside
    0 to 1 or NaN fails the item with a reason that names the value.
    """
    if isinstance(result, Score):
        return _checked_score(result)
    if isinstance(result, bool | np.bool_):
        return Score.of(bool(result), "the scorer returned False")
    if isinstance(result, numbers.Real):
        value = float(result)
        if not 0 <= value <= 1:  # NaN fails this comparison too
            return Score.of(False, f"the scorer returned {result!r}; a score must be a number from 0 to 1")
        passed = value >= CUSTOM_PASS_SCORE
        return Score(value, passed, None if passed else f"score {value:g} is below {CUSTOM_PASS_SCORE}")
    return Score.of(
        False, f"the scorer returned {result!r}; expected a bool, a number from 0 to 1 or a Score"
    )


def _checked_score(result: Score) -> Score:
    if not isinstance(result.value, numbers.Real) or isinstance(result.value, bool | np.bool_):
        return Score.of(False, f"the scorer returned a Score with value {result.value!r}, not a number")
    value = float(result.value)
    if not 0 <= value <= 1:
        return Score.of(False, f"the scorer returned a Score with value {value!r}; it must be from 0 to 1")
    if not isinstance(result.passed, bool | np.bool_):
        return Score.of(False, f"the scorer returned a Score with passed={result.passed!r}, not a bool")
    reason = None if result.reason is None else str(result.reason)
    return Score(value, bool(result.passed), reason, result.transient)


def build_scorer(settings: spec.AnyScorer, name: str, base_dir: Path, registry: ScorerRegistry) -> Scorer:
    """Build the scorer that ``settings`` describe; raise ScorerBuildError for a bad setting."""
    match settings:
        case spec.ExactMatchScorer():
            return ExactMatch(name, settings.normalize)
        case spec.ContainsScorer():
            if settings.values is not None:
                _check_values(settings.values, settings.normalize)
            return Contains(name, settings.values, settings.normalize)
        case spec.NotContainsScorer():
            _check_values(settings.values, settings.normalize)
            return NotContains(name, settings.values, settings.normalize)
        case spec.RegexScorer():
            return _regex(settings, name)
        case spec.JsonValidScorer():
            return JsonValid(name, settings.strip_code_fence)
        case spec.JsonSchemaScorer():
            return _json_schema(settings, name, base_dir)
        case spec.JsonMatchScorer():
            return JsonMatch(name, settings.strip_code_fence)
        case spec.NumericScorer():
            return Numeric(name, settings.abs_tol, settings.rel_tol)
        case spec.EmbeddingScorer():
            try:
                return EmbeddingSimilarity(name, settings.min_similarity)
            except EmbeddingModelMissing as exc:
                raise ScorerBuildError(str(exc), "type") from None
        case spec.JudgeScorer():
            return LLMJudge(
                name,
                settings.rubric,
                settings.model,
                settings.scale_max,
                settings.pass_score,
                settings.max_tokens,
            )
        case spec.CustomScorer():
            function = registry.resolve(settings.function)
            return CustomScorer(name, function, settings.options, settings.function, settings.version)
    raise AssertionError(f"unhandled scorer type {settings.type}")


def _check_values(values: list[str], rules: spec.Normalization) -> None:
    """Raise ScorerBuildError for an empty list or a value that normalizes to the empty text.

    The empty text occurs in every output, so such a value would pass (or fail) every item.
    """
    if not values:
        raise ScorerBuildError("values must list at least one text; omit values to use expected", "values")
    for position, value in enumerate(values):
        if not normalize(value, rules):
            raise ScorerBuildError(
                f"values[{position}] {value!r} is empty after normalization and occurs in every output",
                "values",
            )


def _regex(settings: spec.RegexScorer, name: str) -> Regex:
    try:
        return Regex(name, settings.pattern, settings.full_match, settings.ignore_case)
    except Exception as exc:  # re.error and its relatives
        raise ScorerBuildError(f"invalid regular expression {settings.pattern!r}: {exc}", "pattern") from None


def _json_schema(settings: spec.JsonSchemaScorer, name: str, base_dir: Path) -> JsonSchema:
    import jsonschema

    schema = settings.json_schema
    field = "schema"
    base_uri = base_dir.resolve().as_uri() + "/"
    if settings.schema_file is not None:
        field = "schema_file"
        path = base_dir / settings.schema_file
        base_uri = path.resolve().as_uri()
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ScorerBuildError(f"cannot read JSON Schema {path}: {exc}", field) from None
    if not isinstance(schema, dict):
        raise ScorerBuildError("a JSON Schema must be a JSON object", field)
    try:
        return JsonSchema(name, schema, settings.strip_code_fence, base_uri)
    except jsonschema.exceptions.SchemaError as exc:
        raise ScorerBuildError(f"invalid JSON Schema: {exc.message}", field) from None
    except SchemaReferenceError as exc:
        raise ScorerBuildError(f"invalid JSON Schema: {exc}", field) from None
