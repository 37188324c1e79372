"""Eval datasets: JSONL files with one item per line (input messages, expected answer, metadata)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.scenario.errors import Problem

ITEM_KEYS = ("id", "input", "messages", "expected", "reference", "metadata")


@dataclass(frozen=True)
class EvalItem:
    """One dataset item: the messages sent, and what the scorers compare the output with."""

    id: str
    messages: tuple[dict[str, Any], ...]
    expected: Any = None
    """The answer scorers compare with: a string, a number, or a JSON value for json_match."""
    reference: str | None = None
    """A reference answer for the embedding and judge scorers; default: expected as text."""
    metadata: dict[str, Any] = field(default_factory=dict)
    line: int = 0

    @property
    def reference_text(self) -> str | None:
        """Return the reference, else the expected answer as text, else None."""
        if self.reference is not None:
            return self.reference
        if self.expected is None:
            return None
        return self.expected if isinstance(self.expected, str) else json.dumps(self.expected)

    @property
    def question(self) -> str:
        """Return the text of the last user message, which reports and the judge show."""
        for message in reversed(self.messages):
            if message.get("role") == "user" and isinstance(message.get("content"), str):
                return str(message["content"])
        return ""

    def fingerprint(self) -> str:
        """Return a SHA-256 of everything in the item that changes a request or a score.

        Metadata is part of it because custom scorers receive the whole item.
        """
        canonical = json.dumps(
            [self.id, self.messages, self.expected, self.reference, self.metadata],
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


class DatasetError(Exception):
    """A dataset that cannot be read; ``problem`` names its file and line."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


def load_dataset(path: Path) -> list[EvalItem]:
    """Read a JSONL dataset; raise DatasetError naming the file and line of the first bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(Problem(path, None, None, None, "dataset file not found")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(Problem(path, None, None, None, f"cannot read the dataset: {exc}")) from None
    items: list[EvalItem] = []
    seen: dict[str, int] = {}
    # JSONL separates lines with "\n" alone; str.splitlines() would also split inside a string
    # value at U+2028, U+0085 and other Unicode line breaks.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        item = _parse_line(path, number, line)
        if item.id in seen:
            message = f"item id {item.id!r} is already used on line {seen[item.id]}; ids must be unique"
            raise DatasetError(Problem(path, number, 1, "id", message))
        seen[item.id] = number
        items.append(item)
    if not items:
        raise DatasetError(Problem(path, None, None, None, "the dataset has no items"))
    return items


def _parse_line(path: Path, number: int, line: str) -> EvalItem:
    def problem(message: str, key: str | None = None, column: int = 1) -> DatasetError:
        return DatasetError(Problem(path, number, column, key, message))

    try:
        data = json.loads(line, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise problem(f"invalid JSON: {exc.msg}", column=exc.colno) from None
    except _NonFiniteNumber as exc:
        raise problem(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise problem(f"an item must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(ITEM_KEYS))
    if unknown:
        raise problem(f"unknown key {unknown[0]!r}; allowed keys: {', '.join(ITEM_KEYS)}", unknown[0])
    item_id = data.get("id", f"line-{number}")
    if not isinstance(item_id, str | int) or isinstance(item_id, bool):
        raise problem(f"id must be a string or an integer, got {item_id!r}", "id")
    reference = data.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise problem("reference must be a string", "reference")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        raise problem("metadata must be a JSON object", "metadata")
    return EvalItem(
        id=str(item_id),
        messages=_messages(data, problem),
        expected=data.get("expected"),
        reference=reference,
        metadata=metadata,
        line=number,
    )


class _NonFiniteNumber(ValueError):
    """NaN or an infinite number, which JSON cannot express and no answer can equal."""


def _reject_constant(name: str) -> Any:
    raise _NonFiniteNumber(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFiniteNumber(f"{text} is too large for a float")
    return value


def _messages(data: dict[str, Any], problem: Any) -> tuple[dict[str, Any], ...]:
    if ("input" in data) == ("messages" in data):
        raise problem("give exactly one of input (a user message's text) and messages")
    if "input" in data:
        if not isinstance(data["input"], str) or not data["input"]:
            raise problem("input must be a non-empty string", "input")
        return ({"role": "user", "content": data["input"]},)
    messages = data["messages"]
    if not isinstance(messages, list) or not messages:
        raise problem("messages must be a non-empty list", "messages")
    for position, message in enumerate(messages):
        valid = (
            isinstance(message, dict)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
        )
        if not valid:
            raise problem(f"messages[{position}] must be an object with string role and content", "messages")
    return tuple(messages)
