"""The scorer interface: a score per output, the context scorers may call, and scorer identity."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from harness.evals.dataset import EvalItem

NO_REFERENCE = "no expected answer or reference"
"""The reason of a scorer that compares with a reference, for an item that has neither."""

Completer = Callable[[list[dict[str, Any]], str, dict[str, Any]], Awaitable[str]]
"""Send chat messages to a model alias with request parameters; return the answer text."""


@dataclass(frozen=True)
class Score:
    """One scorer's result for one output: a value from 0 to 1, whether it passed, and why not."""

    value: float
    passed: bool
    reason: str | None = None
    transient: bool = False
    """True when the scorer could not score (a failed judge request, an exception): the eval cache
    does not store such a score, so the next run scores the output again."""

    @classmethod
    def of(cls, passed: bool, reason: str | None = None) -> Score:
        return cls(1.0 if passed else 0.0, passed, None if passed else reason)

    @classmethod
    def unscored(cls, reason: str) -> Score:
        """Return the failing, transient score of an output that the scorer could not score."""
        return cls(0.0, False, reason, transient=True)


@dataclass(frozen=True)
class ScoringContext:
    """The services a scorer may call besides the output and the item."""

    complete: Completer | None = None
    """Calls a model through the gateway under test; None where no gateway is running."""
    default_model: str | None = None


class Scorer(ABC):
    """Grades one output of one dataset item."""

    type: str = "custom"
    version: str = "1"
    graded: bool = False
    """True when scores lie between 0 and 1 (similarity, judge), so the mean matters besides the pass rate."""

    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        self.name = name
        self.options = options or {}

    def fingerprint(self) -> str:
        """Return a hash of the type, version and options: a changed one invalidates cached scores."""
        identity = json.dumps([self.type, self.version, self.options], sort_keys=True, default=str)
        return hashlib.sha256(identity.encode()).hexdigest()[:32]

    @abstractmethod
    async def score(self, output: str, item: EvalItem, context: ScoringContext) -> Score:
        """Return the score of ``output`` for ``item``."""


class SyncScorer(Scorer):
    """A scorer that needs no I/O: it implements ``check``."""

    async def score(self, output: str, item: EvalItem, context: ScoringContext) -> Score:
        return self.check(output, item)

    @abstractmethod
    def check(self, output: str, item: EvalItem) -> Score:
        """Return the score of ``output`` for ``item``."""
