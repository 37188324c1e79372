"""Scenario errors that name the file, line, column and field of each problem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int | None
    """1-based line, or None when the problem has no place in the file."""
    column: int | None
    field: str | None
    """Dotted path such as ``load.requests[0].max_tokens``; None for a YAML syntax error."""
    message: str

    def __str__(self) -> str:
        place = str(self.path)
        if self.line is not None:
            place += f":{self.line}"
            if self.column is not None:
                place += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{place}:{field} {self.message}"


class ScenarioError(Exception):
    """A scenario file that cannot be loaded; ``problems`` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))
