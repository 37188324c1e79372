"""Build the eval part of summary.json from a plan and its scored outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.evals.aggregate import ScorerOutcome, overall_score, summarize_dataset
from harness.evals.plan import EvalPlan, PlannedDataset
from harness.evals.run import OutputRecord
from harness.evals.scoring import Score
from harness.evals.statistics import Interval, threshold_status
from harness.metrics.histogram import LatencyHistogram
from harness.reports.schema import (
    EvalDatasetReport,
    EvalFailure,
    EvalInterval,
    EvalOverallResult,
    EvalReport,
    EvalScorerResult,
)
from harness.scenario.base import GateMode

STRADDLE_RULE = (
    "a threshold passes only when the interval's lower bound reaches it; an interval whose upper bound "
    "is below it fails; an interval that contains it is inconclusive, which fails a block gate"
)


def eval_interval(value: Interval | None) -> EvalInterval | None:
    if value is None:
        return None
    return EvalInterval(
        estimate=value.estimate,
        low=value.low,
        high=value.high,
        confidence=value.confidence,
        samples=value.samples,
    )


def dataset_outcomes(
    plan: EvalPlan, records: list[OutputRecord]
) -> list[tuple[PlannedDataset, list[ScorerOutcome]]]:
    """Group the records by dataset and item, in plan order, and summarize each dataset's scorers."""
    spec = plan.spec
    generator = np.random.default_rng(spec.seed)
    by_key = {(record.dataset, record.item, record.repeat): record for record in records}
    grouped = []
    for dataset in plan.datasets:
        item_ids = [item.id for item in dataset.items]
        scores: list[list[list[Score]]] = [
            [
                [
                    by_key[(dataset.spec.name, item_id, repeat)].scores[scorer.name]
                    for repeat in range(spec.repeats)
                ]
                for scorer in dataset.scorers
            ]
            for item_id in item_ids
        ]
        outcomes = summarize_dataset(
            item_ids, scores, dataset.scorers, spec.confidence, spec.resamples, generator
        )
        grouped.append((dataset, outcomes))
    return grouped


def build_eval_report(
    plan: EvalPlan,
    records: list[OutputRecord],
    model: str,
    scenario_gate: GateMode,
    scorer_lines: dict[str, int | None],
    cache_dir: Path | None,
    results_file: str | None,
) -> EvalReport:
    spec = plan.spec
    gate = spec.gate or scenario_gate
    grouped = dataset_outcomes(plan, records)
    scorer_results = []
    outcomes: list[ScorerOutcome] = []
    weights: list[float] = []
    for dataset, dataset_outcome in grouped:
        for outcome, settings in zip(dataset_outcome, dataset.spec.scorers, strict=True):
            outcomes.append(outcome)
            weights.append(settings.weight)
            scorer_results.append(
                EvalScorerResult(
                    name=outcome.scorer.name,
                    type=outcome.scorer.type,
                    dataset=dataset.spec.name,
                    version=outcome.scorer.version,
                    graded=outcome.scorer.graded,
                    items=len(outcome.item_ids),
                    repeats=spec.repeats,
                    passed=outcome.passed,
                    scored=outcome.scored,
                    pass_rate=eval_interval(outcome.pass_rate),
                    mean_score=eval_interval(outcome.mean_score),
                    min_pass_rate=settings.min_pass_rate,
                    min_mean=settings.min_mean,
                    weight=settings.weight,
                    status=outcome.status(settings.min_pass_rate, settings.min_mean),
                    gate=settings.gate or gate,
                    line=scorer_lines.get(outcome.scorer.name),
                    failures=[EvalFailure(item=i, repeat=r, reason=why) for i, r, why in outcome.failures()],
                )
            )
    items = sum(len(dataset.items) for dataset in plan.datasets)
    overall = overall_score(outcomes, weights, spec.confidence, items)
    overall_status = (
        "pass" if spec.min_overall_score is None else threshold_status(overall, spec.min_overall_score)
    )
    return EvalReport(
        model=model,
        params=spec.params.model_dump(exclude_none=True),
        repeats=spec.repeats,
        confidence=spec.confidence,
        resamples=spec.resamples,
        seed=spec.seed,
        straddle_rule=STRADDLE_RULE,
        baseline_tolerance=spec.baseline_tolerance,
        datasets=[_dataset_report(dataset, records) for dataset in plan.datasets],
        scorers=scorer_results,
        overall=EvalOverallResult(
            score=eval_interval(overall), min_score=spec.min_overall_score, status=overall_status, gate=gate
        ),
        outputs=len(records),
        from_cache=sum(record.from_cache for record in records),
        cache_dir=str(cache_dir) if cache_dir is not None else None,
        results_file=results_file,
    )


def _dataset_report(dataset: PlannedDataset, records: list[OutputRecord]) -> EvalDatasetReport:
    from harness.reports.summary import distribution

    mine = [record for record in records if record.dataset == dataset.spec.name]
    sent = [record for record in mine if not record.from_cache]
    latency = LatencyHistogram()
    for record in sent:
        if record.latency_s is not None and record.error is None:
            latency.record(record.latency_s)
    costs = [record.cost_usd for record in sent]
    return EvalDatasetReport(
        name=dataset.spec.name,
        path=str(dataset.path),
        items=len(dataset.items),
        outputs=len(mine),
        from_cache=len(mine) - len(sent),
        requests=len(sent),
        errors=sum(record.error is not None for record in mine),
        gateway_cache_hits=sum(record.gateway_cache == "hit" for record in sent),
        latency=distribution(latency),
        prompt_tokens=sum(record.prompt_tokens for record in sent),
        completion_tokens=sum(record.completion_tokens for record in sent),
        cost_usd=None if any(cost is None for cost in costs) else round(sum(c for c in costs if c), 9),
    )
