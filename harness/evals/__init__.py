"""Eval gates: JSONL datasets sent through the gateway, scorers, bootstrap intervals and thresholds.

Teams add their own metrics in three ways: ``register_scorer(name, function)`` in Python (a
conftest.py, say), the ``pytest_slogate_eval_scorers`` hook, or a ``slogate.scorers`` entry
point. A scenario then uses ``{type: custom, function: NAME}``. ``score_items`` scores outputs
without a gateway, for notebooks and scripts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from harness.evals.aggregate import ScorerOutcome, summarize_dataset
from harness.evals.dataset import DatasetError, EvalItem, load_dataset
from harness.evals.registry import ScorerFunction, ScorerRegistry, as_score
from harness.evals.scoring import Score, Scorer, ScoringContext
from harness.evals.statistics import Interval, bootstrap_interval, threshold_status

__all__ = [
    "DatasetError",
    "EvalItem",
    "Interval",
    "Score",
    "Scorer",
    "ScorerOutcome",
    "ScorerRegistry",
    "ScoringContext",
    "as_score",
    "bootstrap_interval",
    "default_registry",
    "load_dataset",
    "register_scorer",
    "score_items",
    "threshold_status",
]

_DEFAULT_REGISTRY = ScorerRegistry()


def default_registry() -> ScorerRegistry:
    """Return the process-wide registry that ``register_scorer`` adds to; runs use a copy of it."""
    return _DEFAULT_REGISTRY


def register_scorer(name: str, function: ScorerFunction) -> None:
    """Let scenarios call ``function(output, item, **options)`` as ``{type: custom, function: name}``."""
    _DEFAULT_REGISTRY.register(name, function)


def score_items(
    items: Sequence[EvalItem],
    outputs: Sequence[str],
    scorers: Sequence[Scorer],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    context: ScoringContext | None = None,
) -> list[ScorerOutcome]:
    """Score one output per item with every scorer; return each scorer's pass rate and mean with intervals."""
    if len(items) != len(outputs):
        raise ValueError(f"got {len(items)} items but {len(outputs)} outputs; give one output per item")
    context = context or ScoringContext()

    async def score_all() -> list[list[list[Score]]]:
        return [
            [[await scorer.score(output, item, context)] for scorer in scorers]
            for item, output in zip(items, outputs, strict=True)
        ]

    scores = asyncio.run(score_all())
    generator = np.random.default_rng(seed)
    return summarize_dataset([item.id for item in items], scores, scorers, confidence, resamples, generator)
