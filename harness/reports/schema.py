"""The versioned schema of summary.json, as pydantic models.

Bump SCHEMA_VERSION when a field changes meaning or disappears; adding a field keeps it.
``summary.schema.json`` beside this module is generated from these models.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
SUMMARY_SCHEMA_ID = "https://slogate.dev/schemas/summary-v1.json"
SUMMARY_SCHEMA_FILE = Path(__file__).with_name("summary.schema.json")

Verdict = Literal["pass", "warn", "fail", "error"]


class ReportModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Distribution(ReportModel):
    """A latency distribution in milliseconds; percentiles use slogate's one method (HdrHistogram)."""

    count: int
    min_ms: float | None
    mean_ms: float | None
    max_ms: float | None
    percentiles_ms: dict[str, float | None] = Field(description="Keyed p50, p90, p95, p99, p99.9, p100.")


class RateDistribution(ReportModel):
    """A distribution of a per-request rate, in its unit; percentiles as for latencies."""

    count: int
    unit: str
    min: float | None
    mean: float | None
    max: float | None
    percentiles: dict[str, float | None] = Field(description="Keyed p50, p90, p95, p99, p99.9, p100.")


class Tokens(ReportModel):
    prompt: int
    completion: int
    method: Literal["usage", "counted", "mixed", "none"] = Field(
        description="usage: from the server's usage field; counted: content deltas where no usage came."
    )


class MeasurementsReport(ReportModel):
    requests: int
    successes: int
    errors: int
    rate_limited: int = Field(description="429 responses, counted apart from errors.")
    error_classes: dict[str, int]
    error_examples: dict[str, str] = Field(description="The first error message of each error class.")
    window_s: float = Field(description="From the first intended start to the last response end.")
    scheduled_s: float = Field(description="How long the load schedule ran.")
    throughput_per_s: float | None = Field(
        description="Successful responses per second between the first and the last successful response."
    )
    error_rate: float | None
    e2e_latency: Distribution
    ttft: Distribution
    send_lag: Distribution = Field(
        description="Actual send minus intended start: how late the generator was."
    )
    queued: int = Field(description="Open model: requests that waited for an in-flight slot.")
    tokens: Tokens
    itl: Distribution | None = Field(
        None, description="Inter-token latency: one sample per output token after the first content chunk."
    )
    tpot: Distribution | None = Field(
        None, description="Time per output token: (E2E - TTFT) / (output tokens - 1), per stream."
    )
    output_tokens_per_s: RateDistribution | None = Field(
        None, description="Per successful request: output tokens over E2E latency."
    )
    goodput_per_s: float | None = Field(
        None, description="Throughput times the share of successes that met every per-request objective."
    )
    good_requests: int | None = Field(None, description="Successes that met every per-request objective.")
    output_throughput_per_s: float | None = Field(
        None, description="Aggregate output tokens per second: throughput times mean output tokens."
    )
    warmup_requests: int = Field(0, description="Requests of the warm-up, left out of every other field.")
    trustworthy: bool = Field(
        True,
        description="False when the load generator fell behind its schedule (send lag p99 above the "
        "scenario's max_send_lag_p99); the run then fails its gate.",
    )


class ErrorBudgetReport(ReportModel):
    """An objective's error budget in one phase: bad occurrences against what the objective allows."""

    objective: float = Field(description="The share of occurrences that must be good, such as 0.99.")
    bad: int
    total: int
    allowed_bad: float = Field(description="(1 - objective) * total.")
    burn_rate: float | None = Field(
        description="Observed bad ratio / (1 - objective); null without data or at an objective of 100%."
    )
    remaining: float | None = Field(description="1 - burn_rate: the share of the budget left.")


class PhaseBudgetReport(ErrorBudgetReport):
    fault: int = Field(description="Position of the fault in the scenario's faults.")
    phase: Literal["before", "during", "after"]


class BaselineDelta(ReportModel):
    """One objective compared with the baseline run's raw samples."""

    method: Literal["mann-whitney", "bootstrap", "none"] = Field(
        description="mann-whitney: latency and per-request rate samples; bootstrap: ratios, rates and "
        "cost; none: a single value per run (recovery time, capacity), shown but not tested."
    )
    baseline_samples: int
    current_samples: int
    baseline_value: float | None = Field(description="The objective's value in the baseline, in `unit`.")
    current_value: float | None
    unit: str
    change: float | None = Field(
        description="Current minus baseline: relative (a fraction) for latencies, rates and cost, "
        "absolute (percentage points as a fraction) for ratios."
    )
    change_kind: Literal["relative", "absolute"]
    ci_low: float | None = Field(None, description="Bootstrap: 95% interval of `change`, low end.")
    ci_high: float | None = Field(None, description="Bootstrap: 95% interval of `change`, high end.")
    p_value: float | None = Field(
        description="One-sided: the chance of a difference this large in the worse direction if nothing "
        "changed. Mann-Whitney U test, or the bootstrap share of resamples that did not get worse."
    )
    effect_size: float | None = Field(
        None,
        description="Cliff's delta of current against baseline samples, in [-1, 1]: P(current > baseline) "
        "- P(current < baseline); 0 is no shift.",
    )
    tolerance: float | None = Field(description="The change a regression must exceed, as `change` is.")
    status: Literal["regression", "improvement", "no_change", "not_tested"]
    note: str | None = None


class SLOResult(ReportModel):
    name: str
    metric: str
    percentile: float | None
    comparator: Literal["max", "min"]
    limit: float = Field(description="In `unit`; ratios are fractions.")
    observed: float | None
    unit: str
    samples: int
    status: Literal["pass", "fail", "no_data"]
    gate: Literal["block", "warn"]
    line: int | None = Field(description="Line of the objective in the scenario file.")
    phase: Literal["run", "before", "during", "after"] = Field(
        "run", description="The requests judged: the whole run, or a phase of `fault`, by intended start."
    )
    fault: int | None = Field(None, description="The fault of the phase or recovery time, by position.")
    objective: float | None = Field(
        None, description="The share of good occurrences asked for, where the objective is a share."
    )
    burn_rate: float | None = Field(
        None, description="Observed bad ratio / (1 - objective) in the objective's own phase."
    )
    error_budget: ErrorBudgetReport | None = None
    phase_budgets: list[PhaseBudgetReport] = Field(
        default_factory=list,
        description="Run-wide objectives: the error budget in every phase of every fault.",
    )
    note: str | None = Field(None, description="Why a value is missing or what it means.")
    baseline: BaselineDelta | None = Field(None, description="The comparison with the baseline run.")


class CheckResult(ReportModel):
    name: str
    type: str
    status: Literal["pass", "fail"]
    detail: str = Field(description="What was observed; for a failure, the responses that broke the rule.")
    gate: Literal["block", "warn"]
    line: int | None = Field(description="Line of the check in the scenario file.")


class PhaseReport(ReportModel):
    """The requests of one phase around a fault, by intended start."""

    phase: Literal["before", "during", "after"]
    start_s: float | None = Field(description="Window start on the records' clock; null: from the start.")
    end_s: float | None = Field(description="Window end (exclusive); null: to the end of the load.")
    requests: int
    errors: int
    rate_limited: int
    error_rate: float | None
    e2e_p95_ms: float | None
    ttft_p95_ms: float | None


class RecoveryReport(ReportModel):
    """How long after the fault's removal errors and latency were back in the before phase's band."""

    recovered: bool
    recovery_time_ms: float | None = Field(description="Null when the run did not show recovery.")
    window_s: float = Field(description="Length of the rolling window of intended starts.")
    before_error_rate: float | None
    before_e2e_p95_ms: float | None
    max_error_rate: float | None = Field(description="The band's error rate limit.")
    max_e2e_p95_ms: float | None = Field(description="The band's p95 E2E latency limit.")
    after_requests: int
    reason: str | None = Field(description="Why there is no recovery time.")


class FaultReport(ReportModel):
    name: str | None = None
    target: str
    action: str
    at_s: float = Field(description="Planned start, from the start of the load.")
    for_s: float
    applied_at_s: float | None = Field(
        description="When it was applied, on the clock of the request records."
    )
    removed_at_s: float | None = Field(
        description="When its undo began (the planned end); the after phase and recovery time start here."
    )
    restored_at_s: float | None = Field(
        None, description="When the undo finished, for example when a restarted service was ready again."
    )
    phases: list[PhaseReport] = Field(default_factory=list)
    recovery: RecoveryReport | None = None


class ModelCostReport(ReportModel):
    model: str
    input_usd_per_million_tokens: float | None
    output_usd_per_million_tokens: float | None
    price_source: str | None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cache_hits: int
    cost_usd: float | None
    saved_usd: float | None = Field(description="What the cache hits would have cost.")


class CostReport(ReportModel):
    """Token cost of the measured requests; cache hits cost nothing and count as saved."""

    requests: int
    total_usd: float | None = Field(description="Null when a model that served requests has no price.")
    per_request_usd: float | None
    per_1k_requests_usd: float | None
    cache_hits: int
    cache_saved_usd: float | None
    token_method: Literal["usage", "counted", "mixed", "none"]
    unpriced_models: list[str]
    models: list[ModelCostReport]
    request_models: list[str] = Field(
        default_factory=list, description="The model of each request kind, by position in load.requests."
    )


class BaselineReport(ReportModel):
    """The baseline's source and the settings of the comparison; each SLO carries its own delta."""

    source: str = Field(description="The baseline's summary.json.")
    run_id: str
    gate: Literal["block", "warn"]
    significance: float
    latency_tolerance: float
    ratio_tolerance: float
    rate_tolerance: float
    regressions: list[str] = Field(description="Names of the objectives that regressed.")
    error: str | None = Field(None, description="Why no comparison was made, such as a scenario missing.")


class EvalInterval(ReportModel):
    """A point estimate with its percentile-bootstrap interval; items are resampled with replacement."""

    estimate: float
    low: float
    high: float
    confidence: float = Field(description="Confidence level of the interval, such as 0.95.")
    samples: int = Field(description="Dataset items behind the estimate (repeats are averaged per item).")


class EvalFailure(ReportModel):
    item: str = Field(description="The dataset item's id.")
    repeat: int
    reason: str | None


class EvalBaselineDelta(ReportModel):
    """A scorer compared with the baseline run's estimate."""

    baseline_value: float | None = Field(
        description="The baseline's mean score (the pass rate for pass/fail)."
    )
    current_low: float | None
    current_high: float | None
    tolerance: float
    status: Literal["regression", "improvement", "no_change", "not_tested"] = Field(
        description="regression: the whole interval lies below baseline_value - tolerance; improvement: "
        "above baseline_value + tolerance."
    )
    note: str | None = None


class EvalScorerResult(ReportModel):
    name: str
    type: str
    dataset: str
    version: str = Field(description="The scorer's version; a change invalidates cached scores.")
    graded: bool = Field(description="True when scores lie between 0 and 1 (similarity, judge).")
    items: int
    repeats: int
    passed: int = Field(description="Passing outputs, over items times repeats.")
    scored: int = Field(description="Scored outputs: items times repeats.")
    pass_rate: EvalInterval | None
    mean_score: EvalInterval | None
    min_pass_rate: float | None
    min_mean: float | None
    weight: float
    status: Literal["pass", "fail", "inconclusive", "no_data"] = Field(
        description="pass: every threshold at or below the interval's lower bound; fail: the upper bound "
        "below a threshold; inconclusive: a threshold inside the interval, which fails a block gate."
    )
    gate: Literal["block", "warn"]
    line: int | None = Field(description="Line of the scorer in the scenario file.")
    failures: list[EvalFailure] = Field(description="The first failed outputs, with their reasons.")
    baseline: EvalBaselineDelta | None = None


class EvalOverallResult(ReportModel):
    """The weighted mean of the scorers' mean scores, with an interval from the same item resamples."""

    score: EvalInterval | None
    min_score: float | None
    status: Literal["pass", "fail", "inconclusive", "no_data"]
    gate: Literal["block", "warn"]
    baseline: EvalBaselineDelta | None = None


class EvalDatasetReport(ReportModel):
    name: str
    path: str
    items: int
    outputs: int = Field(description="Items times repeats.")
    from_cache: int = Field(description="Outputs taken from the eval cache: no request was sent.")
    requests: int = Field(description="Requests sent through the gateway for this dataset.")
    errors: int = Field(description="Requests that got no answer; every scorer fails them.")
    gateway_cache_hits: int = Field(description="Answers the gateway served from its response cache.")
    latency: Distribution = Field(description="Latency of the requests sent (cached outputs excluded).")
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None = Field(description="Cost of the requests sent; null when the model has no price.")


class EvalReport(ReportModel):
    model: str
    params: dict[str, Any]
    repeats: int
    confidence: float
    resamples: int
    seed: int
    straddle_rule: str
    baseline_tolerance: float = Field(
        description="A regression needs the interval's upper bound below the baseline by more than this."
    )
    datasets: list[EvalDatasetReport]
    scorers: list[EvalScorerResult]
    overall: EvalOverallResult
    outputs: int
    from_cache: int
    cache_dir: str | None = Field(description="The eval cache folder; null when the cache was off.")
    results_file: str | None = Field(description="Per-output JSONL records, relative to the run folder.")


class StageReport(ReportModel):
    duration_s: float
    rate_per_s: float
    ramp: Literal["linear", "step"]


class LoadReport(ReportModel):
    model: Literal["open", "closed"]
    rate_per_s: float | None
    users: int | None
    duration_s: float = Field(description="Length of the schedule (of each trial, in a sweep).")
    max_requests: int
    stream: bool
    engine: Literal["builtin", "locust"] = "builtin"
    workers: int = 1
    arrival: Literal["constant", "poisson"] = "constant"
    warmup_s: float = 0.0
    stages: list[StageReport] | None = None
    max_send_lag_p99_ms: float | None = None


class TrialReport(ReportModel):
    """One constant-rate trial of a sweep."""

    rate_per_s: float
    passed: bool
    requests: int
    throughput_per_s: float | None
    error_rate: float | None
    e2e_p99_ms: float | None
    send_lag_p99_ms: float | None
    failed_objectives: list[str]
    requests_file: str


class SweepReport(ReportModel):
    capacity_per_s: float | None = Field(
        description="The highest arrival rate whose trial met every objective; null when none did."
    )
    start_rate_per_s: float
    max_rate_per_s: float
    precision: float
    trials: list[TrialReport]


class StackReport(ReportModel):
    backend: str
    replicas: int
    gateway_urls: list[str]
    logs: dict[str, str] = Field(description="Service log files, relative to the run folder.")


class ScenarioReport(ReportModel):
    name: str
    file: str
    gate: Literal["block", "warn"]
    verdict: Verdict
    error: str | None
    started_at: datetime
    finished_at: datetime
    load: LoadReport
    stack: StackReport | None
    measurements: MeasurementsReport | None
    slos: list[SLOResult]
    checks: list[CheckResult] = Field(default_factory=list)
    faults: list[FaultReport] = Field(default_factory=list)
    trust: SLOResult | None = Field(
        None,
        description="Whether the load generator kept its schedule (send lag p99 within the scenario's "
        "max_send_lag_p99); when it failed, the measurements are untrustworthy and the gate fails.",
    )
    requests_file: str | None = Field(description="Per-request CSV, relative to the run folder.")
    series_file: str | None = Field(None, description="Per-second series CSV, relative to the run folder.")
    sweep: SweepReport | None = Field(None, description="Sweep scenarios: the capacity and every trial.")
    cost: CostReport | None = None
    baseline: BaselineReport | None = None
    requests_parquet: str | None = Field(
        None, description="Per-request Parquet file (when pyarrow is installed), relative to the run folder."
    )
    gateway_metrics: dict[str, str] = Field(
        default_factory=dict,
        description="Each replica's /metrics text scraped at the end of the scenario (or the scrape "
        "error), relative to the run folder.",
    )
    gateway_counters: dict[str, dict[str, dict[str, float]]] = Field(
        default_factory=dict,
        description="Per replica: key counters (requests by status, cache results, rate-limit "
        "rejections, upstream and Redis errors, tokens) summed by one label.",
    )
    eval: EvalReport | None = Field(None, description="Eval datasets, scorer results and the overall score.")


def summary_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of summary.json, as shipped in summary.schema.json."""
    schema = RunSummary.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SUMMARY_SCHEMA_ID, **schema}


class RunSummary(ReportModel):
    schema_version: Literal[1] = 1
    run_id: str
    started_at: datetime
    finished_at: datetime
    slogate_version: str
    backend: str
    duration_scale: float
    verdict: Verdict
    errors: list[str] = Field(
        description="Problems that kept scenarios from running: invalid scenario files, an interrupted run."
    )
    scenarios: list[ScenarioReport]
