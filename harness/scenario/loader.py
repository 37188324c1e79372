"""Load scenario YAML into the typed model, keeping the line of every key for error messages."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from harness.evals import default_registry
from harness.evals.plan import EvalPlan, PlanProblems, plan_eval
from harness.evals.registry import ScorerRegistry
from harness.scenario.errors import Problem, ScenarioError
from harness.scenario.model import Location, Scenario
from harness.scenario.yamlsource import SourceMap, parse_yaml, read_text

SCENARIO_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedScenario:
    scenario: Scenario
    path: Path
    source: SourceMap
    eval_plan: EvalPlan | None = None
    """The eval section's datasets and scorers, read and built at load time."""

    def line_of(self, *location: str | int) -> int | None:
        mark = self.source.mark_for(location, of_key=True)
        return mark[0] if mark else None


def load_scenario(path: Path | str, scorers: ScorerRegistry | None = None) -> LoadedScenario:
    """Read, parse and validate a scenario and its eval datasets; raise ScenarioError naming every problem.

    ``scorers`` resolves custom scorer names; default: the registry that register_scorer fills.
    """
    path = Path(path)
    data, source = parse_yaml(read_text(path), path)
    if not isinstance(data, dict):
        message = f"a scenario must be a mapping with version, name, load and slo keys; {_describe(data)}"
        raise ScenarioError([Problem(path, 1, 1, None, message)])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        errors = _without_misspelt_missing(_deduplicated(exc.errors()))
        raise ScenarioError(_sorted([_problem_from(error, path, source) for error in errors])) from None
    problems = [
        _problem_at(location, message, path, source) for location, message in scenario.consistency_problems()
    ]
    if problems:
        raise ScenarioError(_sorted(problems))
    return LoadedScenario(scenario, path, source, _eval_plan(scenario, path, source, scorers))


def _eval_plan(
    scenario: Scenario, path: Path, source: SourceMap, scorers: ScorerRegistry | None
) -> EvalPlan | None:
    if scenario.eval is None:
        return None
    try:
        return plan_eval(scenario.eval, path.parent, scorers or default_registry())
    except PlanProblems as exc:
        problems = [_problem_at(location, message, path, source) for location, message in exc.scorer_problems]
        raise ScenarioError(_sorted(problems) + exc.dataset_problems) from None


def _describe(data: Any) -> str:
    if data is None:
        return "this file is empty"
    if isinstance(data, str | int | float | bool):
        return "this file holds a single plain value"
    return "this file holds a list"


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))


def _problem_at(location: Location, message: str, path: Path, source: SourceMap) -> Problem:
    mark = source.mark_for(location, of_key=False)
    line, column = mark if mark else (None, None)
    return Problem(path, line, column, format_location(location), message)


def _deduplicated(errors: Iterable[ErrorDetails]) -> list[ErrorDetails]:
    """Keep one error per YAML location: a union type reports each failed alternative."""
    kept: dict[Location, ErrorDetails] = {}
    for error in errors:
        location = _error_location(error)
        kept.setdefault(location, error)
    return list(kept.values())


def _without_misspelt_missing(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """Drop "missing X" when an unknown sibling key is a likely misspelling of X.

    The unknown-key error already says "did you mean X", so the missing error only repeats it.
    """
    unknown: dict[Location, list[str]] = {}
    for error in errors:
        if error["type"] == "extra_forbidden":
            location = _error_location(error)
            unknown.setdefault(location[:-1], []).append(str(location[-1]))
    kept = []
    for error in errors:
        location = _error_location(error)
        siblings = unknown.get(location[:-1], [])
        if error["type"] == "missing" and difflib.get_close_matches(str(location[-1]), siblings, n=1):
            continue
        kept.append(error)
    return kept


def _error_location(error: ErrorDetails) -> Location:
    """Return the YAML location of a pydantic error, dropping parts that are not YAML keys.

    Pydantic adds the names of union alternatives (``str``, ``list[...]``) and ``[key]`` for a
    bad dictionary key. An unknown key is not a model field, but it is the location to report.
    """
    location: list[str | int] = []
    model: Any = Scenario
    loc = error["loc"]
    for position, part in enumerate(loc):
        tagged = _tagged_alternative(model, part)
        if tagged is not None:
            model = tagged  # a discriminated union's tag, not a YAML key
            continue
        child = _child_type(model, part)
        is_unknown_key = error["type"] == "extra_forbidden" and position == len(loc) - 1
        if child is None and location and not is_unknown_key:
            break
        if _is_tag_step(model, part):
            model = child  # the union member's tag is pydantic's, not a key in the file
            continue
        location.append(part)
        model = child
    return tuple(location)


def _child_type(annotation: Any, part: str | int) -> Any:
    """Return the type found one step below ``annotation`` along ``part``, or None.

    In a union told apart by its ``type`` field, pydantic's location names the chosen member by
    its tag (``toxic.latency.jitter``), and that step leads to the member itself.
    """
    alternatives = _alternatives(annotation)
    if len(alternatives) > 1 and isinstance(part, str):
        for candidate in alternatives:
            if _type_tag(candidate) == part:
                return candidate
    for candidate in alternatives:
        is_model = isinstance(candidate, type) and issubclass(candidate, BaseModel)
        if is_model and isinstance(part, str) and part in candidate.model_fields:
            return candidate.model_fields[part].annotation
        origin = typing.get_origin(candidate)
        args = typing.get_args(candidate)
        if origin is list and isinstance(part, int):
            return args[0]
        if origin is dict and isinstance(part, str):
            return args[1]
    return None


def _is_tag_step(annotation: Any, part: str | int) -> bool:
    alternatives = _alternatives(annotation)
    return len(alternatives) > 1 and any(_type_tag(candidate) == part for candidate in alternatives)


def _type_tag(candidate: Any) -> str | None:
    if not (isinstance(candidate, type) and issubclass(candidate, BaseModel)):
        return None
    field = candidate.model_fields.get("type")
    values = typing.get_args(field.annotation) if field is not None else ()
    return values[0] if len(values) == 1 and isinstance(values[0], str) else None


def _alternatives(annotation: Any) -> tuple[Any, ...]:
    """Flatten unions and Annotated wrappers, nested or not, into the types they allow."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return tuple(member for arg in typing.get_args(annotation) for member in _alternatives(arg))
    if origin is typing.Annotated:
        return _alternatives(typing.get_args(annotation)[0])
    return (annotation,)


def _tagged_alternative(annotation: Any, part: str | int) -> Any:
    """Return the alternative of a discriminated union whose tag is ``part``, or None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _tagged_alternative(typing.get_args(annotation)[0], part)
    if origin is not typing.Union and origin is not types.UnionType:
        return None
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is typing.Annotated:
            inner, *metadata = typing.get_args(arg)
            if any(isinstance(item, Tag) and item.tag == part for item in metadata):
                return inner
    return None


def format_location(location: Location) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _problem_from(error: ErrorDetails, path: Path, source: SourceMap) -> Problem:
    location = _error_location(error)
    kind = error["type"]
    mark = source.mark_for(location, of_key=kind in ("extra_forbidden", "missing"))
    line, column = mark if mark else (None, None)
    return Problem(path, line, column, format_location(location) or None, _message(error, location))


def _message(error: ErrorDetails, location: Location) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_field_message(location)
    if kind == "missing":
        return "required field is missing"
    message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = error.get("input")
    shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    if kind != "value_error" and len(shown) <= 80 and shown not in message:
        message += f"; got {shown}"
    return message


def _unknown_field_message(location: Location) -> str:
    unknown = str(location[-1])
    parent: Any = Scenario
    for part in location[:-1]:
        parent = _child_type(parent, part)
    allowed = sorted(_model_fields(parent))
    message = f"unknown field {unknown!r}"
    close = difflib.get_close_matches(unknown, allowed, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    if allowed:
        message += f" Allowed fields: {', '.join(allowed)}"
    return message


def _model_fields(annotation: Any) -> list[str]:
    for candidate in _alternatives(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return list(candidate.model_fields)
    return []


def duplicate_name_problem(loaded: LoadedScenario, seen: dict[str, Path]) -> Problem | None:
    """Return a problem when another file already uses this scenario's name; otherwise remember it."""
    name = loaded.scenario.name
    first = seen.setdefault(name, loaded.path)
    if first == loaded.path:
        return None
    mark = loaded.source.mark_for(("name",), of_key=False)
    line, column = mark if mark else (None, None)
    message = f"scenario name {name!r} is already used by {first}; reports and test ids need unique names"
    return Problem(loaded.path, line, column, "name", message)


def find_scenario_files(paths: Iterable[Path | str]) -> list[Path]:
    """Expand files and directories into the sorted scenario files they contain."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in SCENARIO_SUFFIXES and p.is_file()))
        else:
            found.append(path)
    return found
