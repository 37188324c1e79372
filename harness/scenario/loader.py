"""Load scenario YAML into the typed model, keeping the line of every key for error messages."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from harness.scenario.errors import Problem, ScenarioError
from harness.scenario.model import Scenario

Location = tuple[str | int, ...]
Mark = tuple[int, int]
"""1-based line and column."""

SCENARIO_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class SourceMap:
    """Where each key and value of a YAML document starts."""

    keys: dict[Location, Mark]
    values: dict[Location, Mark]

    def mark_for(self, location: Location, *, of_key: bool) -> Mark | None:
        """Return the mark of ``location``, or of its nearest ancestor that is in the file."""
        table = self.keys if of_key else self.values
        for end in range(len(location), -1, -1):
            prefix = location[:end]
            mark = table.get(prefix) or self.values.get(prefix)
            if mark is not None:
                return mark
        return None


@dataclass(frozen=True)
class LoadedScenario:
    scenario: Scenario
    path: Path
    source: SourceMap

    def line_of(self, *location: str | int) -> int | None:
        mark = self.source.mark_for(location, of_key=True)
        return mark[0] if mark else None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first defined on line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _mark(node: yaml.Node) -> Mark:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _index(node: yaml.Node, location: Location, source: SourceMap) -> None:
    source.values[location] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*location, str(key_node.value))
            source.keys[child] = _mark(key_node)
            _index(value_node, child, source)
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            _index(item, (*location, position), source)


def parse_yaml(text: str, path: Path) -> tuple[Any, SourceMap]:
    """Parse one YAML document; return its data and where each key and value sits."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        raise ScenarioError([Problem(path, line, column, None, f"invalid YAML: {message}")]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(path, None, None, None, f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    source = SourceMap({}, {})
    if node is not None:
        _index(node, (), source)
    return data, source


def load_scenario(path: Path | str) -> LoadedScenario:
    """Read, parse and validate a scenario file; raise ScenarioError naming every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([Problem(path, None, None, None, f"cannot read the file: {exc}")]) from None
    data, source = parse_yaml(text, path)
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        message = f"a scenario must be a mapping with version, name, load and slo keys; this file is {kind}"
        raise ScenarioError([Problem(path, 1, 1, None, message)])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = [_problem_from(error, path, source) for error in _deduplicated(exc.errors())]
        raise ScenarioError(sorted(problems, key=lambda p: (p.line or 0, p.column or 0))) from None
    return LoadedScenario(scenario, path, source)


def _deduplicated(errors: Iterable[ErrorDetails]) -> list[ErrorDetails]:
    """Keep one error per YAML location: a union type reports each failed alternative."""
    kept: dict[Location, ErrorDetails] = {}
    for error in errors:
        location = _yaml_location(error["loc"])
        kept.setdefault(location, error)
    return list(kept.values())


def _yaml_location(loc: Sequence[str | int]) -> Location:
    """Drop the parts of a pydantic location that name union alternatives, not YAML keys."""
    location: list[str | int] = []
    model: Any = Scenario
    for part in loc:
        if isinstance(part, str) and model is None and location:
            break  # a union alternative such as 'str' or 'list[...]'
        location.append(part)
        model = _child_type(model, part)
    return tuple(location)


def _child_type(annotation: Any, part: str | int) -> Any:
    """Return the type found one step below ``annotation`` along ``part``, or None."""
    for candidate in _alternatives(annotation):
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


def _alternatives(annotation: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(annotation)
    if origin is typing.Annotated:
        return _alternatives(typing.get_args(annotation)[0])
    return (annotation,)


def format_location(location: Location) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _problem_from(error: ErrorDetails, path: Path, source: SourceMap) -> Problem:
    location = _yaml_location(error["loc"])
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
