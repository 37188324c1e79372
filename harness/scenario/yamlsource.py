"""Strict YAML parsing for scenario files, with the line and column of every key and value.

Scenario files follow the YAML 1.2 core schema rather than PyYAML's YAML 1.1 defaults, so
``on``, ``yes`` and ``no`` stay strings, ``012`` is twelve, and ``1:30`` is not ninety.
Duplicate keys, recursive aliases and alias bombs are rejected instead of being accepted
silently or hanging the loader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from harness.scenario.errors import Problem, ScenarioError

Location = tuple[str | int, ...]
Mark = tuple[int, int]
"""1-based line and column."""

MAX_NODES = 100_000
"""Nodes a document may have once aliases are expanded; far above any real scenario."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _CoreSchemaResolver(BaseResolver):
    """Implicit tags of the YAML 1.2 core schema."""


_CORE_SCHEMA = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    (_MERGE_TAG, r"^(?:<<)$", "<"),
]
for _tag, _pattern, _first in _CORE_SCHEMA:
    _CoreSchemaResolver.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


class _StrictConstructor(SafeConstructor):
    """SafeConstructor with YAML 1.2 integers and without duplicate or unhashable keys."""

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # keys merged in with << may be overridden; that is what merging is for
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                raise ConstructorError(
                    None,
                    None,
                    "a mapping key must be a plain value, not a list or mapping",
                    key_node.start_mark,
                ) from None
            if first is not None:
                line = first.start_mark.line + 1
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first defined on line {line})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


class _StrictLoader(Reader, Scanner, Parser, Composer, _StrictConstructor, _CoreSchemaResolver):
    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _StrictConstructor.__init__(self)
        _CoreSchemaResolver.__init__(self)


# The stubs type add_constructor for loader classes built from the stock constructors only.
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)  # type: ignore[type-var]


@dataclass(frozen=True)
class SourceMap:
    """Where each key and value of a YAML document starts."""

    keys: dict[Location, Mark]
    values: dict[Location, Mark]

    def mark_for(self, location: Location, *, of_key: bool) -> Mark | None:
        """Return the mark of ``location``, or the key of its nearest ancestor that is in the file.

        ``of_key`` picks the key's mark over the value's for ``location`` itself; for a field that
        is absent, the line of the enclosing key (``load:``) is the place to look.
        """
        table = self.keys if of_key else self.values
        exact = table.get(location) or self.values.get(location)
        if exact is not None:
            return exact
        for end in range(len(location) - 1, -1, -1):
            prefix = location[:end]
            mark = self.keys.get(prefix) or self.values.get(prefix)
            if mark is not None:
                return mark
        return None


def _mark(node: yaml.Node) -> Mark:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Indexer:
    """Walks the composed node graph, recording marks and refusing cycles and alias bombs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.source = SourceMap({}, {})
        self.visited = 0
        self.open_nodes: set[int] = set()

    def index(self, node: yaml.Node, location: Location) -> None:
        self.visited += 1
        if self.visited > MAX_NODES:
            self._fail(node, f"the document has more than {MAX_NODES} values once aliases are expanded")
        if id(node) in self.open_nodes:
            self._fail(node, "an alias refers to a node that contains it (a recursive alias)")
        self.source.values.setdefault(location, _mark(node))
        self.open_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = (*location, str(key_node.value))
                self.source.keys.setdefault(child, _mark(key_node))
                self.index(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for position, item in enumerate(node.value):
                self.index(item, (*location, position))
        self.open_nodes.discard(id(node))

    def _fail(self, node: yaml.Node, message: str) -> None:
        line, column = _mark(node)
        raise ScenarioError([Problem(self.path, line, column, None, f"invalid YAML: {message}")])


def _yaml_problem(exc: yaml.YAMLError, path: Path, text: str) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        return Problem(path, line, column, None, f"invalid YAML: {message}")
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
        return Problem(
            path, line, None, None, f"invalid character {exc.character!r} in the file: {exc.reason}"
        )
    return Problem(path, None, None, None, f"invalid YAML: {exc}")


def parse_yaml(text: str, path: Path) -> tuple[Any, SourceMap]:
    """Parse one YAML document; return its data and where each key and value sits."""
    loader: _StrictLoader | None = None
    try:
        loader = _StrictLoader(text)
        node = loader.get_single_node()
        indexer = _Indexer(path)
        if node is not None:
            indexer.index(node, ())
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise ScenarioError([_yaml_problem(exc, path, text)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, indexer.source


def read_text(path: Path) -> str:
    """Read a scenario file as UTF-8; a decoding error names the line of the bad byte."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioError([Problem(path, None, None, None, f"cannot read the file: {exc}")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = f"the file is not UTF-8: byte {raw[exc.start]:#04x} cannot be decoded"
        raise ScenarioError([Problem(path, line, None, None, message)]) from None
