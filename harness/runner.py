"""Run one scenario on a running stack: send its load with its faults, measure, and judge it.

Records stream to ``requests/<scenario>.csv`` and into the measurements while the load runs;
the per-second series goes to ``series/<scenario>.csv``. A sweep runs one trial per rate and
writes each trial's files with a ``.trial-N`` suffix.
"""

from __future__ import annotations

import asyncio
import importlib.util
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import uvloop

from harness.checks.evaluate import CheckCollector, CheckVerdict, RetryTarget, collector_for, evaluate_checks
from harness.cost.compute import CostAccumulator, RunCost
from harness.cost.prices import price_table
from harness.evals.cache import DEFAULT_CACHE_DIR, EvalCache, cache_key, package_digest
from harness.evals.report import build_eval_report
from harness.evals.run import EvalRunner, EvalTarget
from harness.faults.timeline import FaultEvent, FaultThread
from harness.load.engine import (
    CHAT_COMPLETIONS_PATH,
    LoadResult,
    ProgressCallback,
    Target,
    prepare_requests,
    run_load_blocking,
)
from harness.load.sweep import find_capacity
from harness.metrics.records import RequestRecord
from harness.metrics.series import SeriesBuilder, write_series_csv
from harness.metrics.stored import read_requests_csv
from harness.metrics.summary import Measurements, MeasurementsBuilder
from harness.reports.schema import EvalReport, Verdict
from harness.reports.scrape import scrape_metrics
from harness.reports.writers import RequestsCSV, write_requests_parquet
from harness.scenario.faults import FaultSpec
from harness.scenario.loader import LoadedScenario
from harness.scenario.model import Scenario
from harness.scenario.slo import AnySLO
from harness.slo.evaluate import SLOContext, SLOVerdict, evaluate_slo, request_objectives, trust_verdict
from harness.slo.phases import PhaseMeasurements, measure_phases
from harness.slo.recovery import Outcome, Recovery, measure_recovery
from harness.stack.base import Endpoints, StackBackend
from harness.stack.errors import StackError, UnsupportedFault

BACKENDS = ("local", "docker", "external")
MAX_DURATION_SCALE = 1000.0


def new_run_id() -> str:
    """Return a sortable, unique run id such as ``20261204-153012-a3f9``."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class RunSettings:
    """Settings of one harness run, passed explicitly so two runs can share a process."""

    run_id: str = field(default_factory=new_run_id)
    backend: str = "local"
    duration_scale: float = 1.0
    reports_dir: Path = Path("reports")
    target_url: str | None = None
    """External backend: base URL of the gateway under test."""
    api_key: str | None = field(default=None, repr=False)
    """External backend: API key sent as a bearer token."""
    eval_cache_dir: Path | None = DEFAULT_CACHE_DIR
    """Folder of the eval result cache; None turns the cache off."""
    eval_cache_external: bool = False
    """Whether ``--backend external`` uses the eval cache too (``--eval-cache``). It is off by default
    there, because a redeploy behind the same URL would leave stale outputs in the cache."""

    def __post_init__(self) -> None:
        if self.eval_cache_external and self.eval_cache_dir is None:
            raise ValueError("--eval-cache and --no-eval-cache contradict each other; give one of them")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; available backends: {', '.join(BACKENDS)}")
        if not 0 < self.duration_scale <= MAX_DURATION_SCALE:
            raise ValueError(
                f"the duration scale must be greater than 0 and at most {MAX_DURATION_SCALE:g}, "
                f"got {self.duration_scale}"
            )
        if self.backend == "external" and not self.target_url:
            raise ValueError("the external backend needs --target-url URL, the base URL of a running gateway")
        if self.backend != "external" and (self.target_url or self.api_key):
            raise ValueError(
                f"--target-url and --api-key apply to --backend external; the {self.backend} backend "
                "starts its own gateway"
            )

    @property
    def run_dir(self) -> Path:
        return self.reports_dir / self.run_id

    @property
    def effective_eval_cache_dir(self) -> Path | None:
        """Return the eval cache folder this run uses: None when the cache is off."""
        if self.backend == "external" and not self.eval_cache_external:
            return None
        return self.eval_cache_dir


@dataclass
class Trial:
    """One constant-rate run of a sweep and what it showed."""

    rate_per_s: float
    load: LoadResult
    measurements: Measurements
    verdicts: list[SLOVerdict]
    trust: SLOVerdict
    """Whether the load generator kept its schedule; a trial where it did not cannot pass."""
    requests_file: Path
    series_file: Path
    cost: RunCost | None = None

    @property
    def passed(self) -> bool:
        return self.trust.passed and all(verdict.passed for verdict in self.verdicts)


@dataclass
class SweepOutcome:
    capacity_per_s: float | None
    """The highest rate whose trial passed; None when none did."""
    trials: list[Trial]


@dataclass
class ScenarioResult:
    loaded: LoadedScenario
    scenario: Scenario
    """The scenario as run, with the duration scale applied."""
    started_at: datetime
    finished_at: datetime
    backend: str
    endpoints: Endpoints | None = None
    load: LoadResult | None = None
    measurements: Measurements | None = None
    verdicts: list[SLOVerdict] = field(default_factory=list)
    checks: list[CheckVerdict] = field(default_factory=list)
    faults: list[FaultEvent] = field(default_factory=list)
    trust: SLOVerdict | None = None
    """The check that the load generator kept its schedule; when it fails, so does the gate."""
    error: str | None = None
    """The reason the scenario could not run, such as a stack that failed to start."""
    logs: dict[str, Path] = field(default_factory=dict)
    requests_file: Path | None = None
    series_file: Path | None = None
    sweep: SweepOutcome | None = None
    cost: RunCost | None = None
    phases: PhaseMeasurements | None = None
    recoveries: list[Recovery] = field(default_factory=list)
    requests_parquet: Path | None = None
    metrics_files: dict[str, Path] = field(default_factory=dict)
    """Gateway /metrics text scraped at the end of the scenario, by replica name."""
    eval: EvalReport | None = None

    @property
    def all_verdicts(self) -> list[SLOVerdict]:
        return self.verdicts + ([self.trust] if self.trust is not None else [])

    @property
    def verdict(self) -> Verdict:
        if self.error is not None:
            return "error"
        outcomes = [(v.passed, v.blocks) for v in self.all_verdicts] + [
            (c.passed, c.blocks) for c in self.checks
        ]
        outcomes += eval_outcomes(self.eval)
        if any(blocks for _, blocks in outcomes):
            return "fail"
        if not all(passed for passed, _ in outcomes):
            return "warn"
        return "pass"


def eval_outcomes(report: EvalReport | None) -> list[tuple[bool, bool]]:
    """Return (passed, blocks) of every eval scorer and of the overall score."""
    if report is None:
        return []
    gated = [(scorer.status, scorer.gate) for scorer in report.scorers]
    gated.append((report.overall.status, report.overall.gate))
    return [(status == "pass", status != "pass" and gate == "block") for status, gate in gated]


def scaled(loaded: LoadedScenario, settings: RunSettings) -> Scenario:
    return loaded.scenario.with_duration_scale(settings.duration_scale)


def run_scenario(
    loaded: LoadedScenario,
    backend: StackBackend,
    endpoints: Endpoints,
    settings: RunSettings,
    progress: ProgressCallback | None = None,
) -> ScenarioResult:
    """Send the scenario's load to ``endpoints`` with its faults, then judge every SLO and check."""
    scenario = scaled(loaded, settings)
    started_at = datetime.now(UTC)
    backend.reset_state()
    target = Target(
        base_urls=endpoints.gateway_urls,
        default_model=endpoints.models[0],
        api_keys=endpoints.api_keys,
    )
    result = ScenarioResult(
        loaded=loaded,
        scenario=scenario,
        started_at=started_at,
        finished_at=started_at,
        backend=settings.backend,
        endpoints=endpoints,
    )
    runner = _ScenarioRunner(loaded, scenario, target, backend, settings.run_dir, progress)
    if scenario.load.sweep is not None:
        runner.sweep(result)
    else:
        runner.single(result)
    if loaded.eval_plan is not None:
        result.eval = run_eval(loaded, scenario, endpoints, settings)
    metrics_dir = settings.run_dir / "metrics" / scenario.name
    result.metrics_files = scrape_metrics(endpoints.metrics_urls, metrics_dir)
    if result.requests_file is not None:
        result.requests_parquet = write_requests_parquet(result.requests_file)
    result.finished_at = datetime.now(UTC)
    return result


def run_eval(
    loaded: LoadedScenario, scenario: Scenario, endpoints: Endpoints, settings: RunSettings
) -> EvalReport:
    """Send the eval datasets through the gateway, score them, and return the eval report."""
    plan = loaded.eval_plan
    assert plan is not None and scenario.eval is not None
    spec = scenario.eval
    model = spec.model or endpoints.models[0]
    tenant = spec.tenant or next(iter(endpoints.api_keys), None)
    api_key = endpoints.api_keys.get(tenant) if tenant is not None else None
    fingerprint = target_fingerprint(scenario, endpoints, settings)
    target = EvalTarget(endpoints.gateway_urls, api_key, model, fingerprint)
    cache_dir = settings.effective_eval_cache_dir
    cache = EvalCache(cache_dir) if cache_dir is not None else None
    price = price_table(scenario.cost.prices if scenario.cost else {}).get(model)
    results_file = settings.run_dir / "evals" / f"{scenario.name}.jsonl"
    records = EvalRunner(plan, target, cache, price).run(results_file)
    lines = {
        name: loaded.line_of("eval", "datasets", dataset, "scorers", position)
        for name, dataset, position in spec.scorer_names()
    }
    return build_eval_report(
        plan,
        records,
        model,
        scenario.gate,
        lines,
        cache_dir,
        str(results_file.relative_to(settings.run_dir)),
    )


def target_service_dir() -> Path:
    """Return the folder of the ``target_service`` package that the managed backends run."""
    found = importlib.util.find_spec("target_service")
    if found is None or found.origin is None:
        raise StackError("the target_service package is not installed; install slogate with its gateway")
    return Path(found.origin).parent


def target_fingerprint(scenario: Scenario, endpoints: Endpoints, settings: RunSettings) -> str:
    """Return the eval cache's identity of what answers eval requests.

    A managed stack is its settings and the code that runs it: the files of the installed
    ``target_service`` package, and for the docker backend the gateway image id too. An external
    target is its URL alone, because a redeploy behind the same URL cannot be seen from here.
    """
    if settings.backend == "external":
        return cache_key(settings.backend, settings.target_url)
    code = package_digest(target_service_dir())
    return cache_key(settings.backend, scenario.stack.model_dump(mode="json"), code, endpoints.gateway_image)


class _ScenarioRunner:
    """Runs measured loads of one scenario and judges them."""

    def __init__(
        self,
        loaded: LoadedScenario,
        scenario: Scenario,
        target: Target,
        backend: StackBackend,
        run_dir: Path,
        progress: ProgressCallback | None,
    ) -> None:
        self.loaded = loaded
        self.scenario = scenario
        self.target = target
        self.backend = backend
        self.run_dir = run_dir
        self.progress = progress

    def single(self, result: ScenarioResult) -> None:
        if self.scenario.faults and self.backend.name == "external":
            raise StackError(
                "faults need a managed stack, but --backend external only sends traffic; remove faults "
                "from the scenario, or run it with --backend local"
            )
        self.reject_unsupported_faults()
        collector = collector_for(self.scenario.checks, *_limited_tenants(self.scenario))
        faults = FaultThread(self.scenario.faults, self.perform_fault)
        faults.start()
        try:
            trial = self.measured_run(None, "", collector)
        except BaseException:
            faults.finish(cancel=True)
            raise
        result.faults = faults.finish()
        _align_fault_times(result.faults, faults.origin, trial.load.origin)
        result.load, result.measurements = trial.load, trial.measurements
        result.requests_file, result.series_file = trial.requests_file, trial.series_file
        result.trust, result.cost = trial.trust, trial.cost
        if result.faults:
            result.phases, result.recoveries = self.analyse_faults(result)
        context = SLOContext(
            phases=result.phases,
            recoveries=result.recoveries,
            cost=trial.cost,
            fault_names=[event.spec.name for event in result.faults],
        )
        result.verdicts = self.judge(trial.measurements, context)
        result.checks = self.judge_checks(collector, trial.load)

    def reject_unsupported_faults(self) -> None:
        """Raise UnsupportedFault before the load starts when the backend cannot perform a fault's action."""
        actions = self.backend.fault_actions
        for fault in self.scenario.faults:
            if fault.action is not None and fault.action not in actions:
                raise UnsupportedFault(
                    f"the fault on {fault.target} (action: {fault.action}) is not supported by --backend "
                    f"{self.backend.name}, which performs {' and '.join(actions) or 'no process faults'}; "
                    "run this scenario with --backend local"
                )

    def perform_fault(self, fault: FaultSpec) -> Callable[[], None]:
        """Apply a process action or a network toxic through the backend; return its undo."""
        if fault.toxic is not None:
            return self.backend.apply_toxic(fault.target, fault.toxic)
        assert fault.action is not None
        return self.backend.apply_fault(fault.target, fault.action)

    def analyse_faults(self, result: ScenarioResult) -> tuple[PhaseMeasurements, list[Recovery]]:
        """Measure each fault's phases and recovery from the stored records, read back in one pass."""
        requests_file = result.requests_file
        assert requests_file is not None
        outcomes: list[Outcome] = []

        def measured() -> Iterator[RequestRecord]:
            for record in read_requests_csv(requests_file):
                if not record.warmup:
                    outcomes.append(Outcome.of(record))
                    yield record

        phases = measure_phases(measured(), result.faults, request_objectives(self.scenario.slo))
        outcomes.sort(key=lambda outcome: outcome.start_s)
        recoveries = [
            measure_recovery(position, event, outcomes, self.scenario.recovery)
            for position, event in enumerate(result.faults)
        ]
        return phases, recoveries

    def judge_checks(self, collector: CheckCollector, load: LoadResult) -> list[CheckVerdict]:
        scenario = self.scenario
        if not scenario.checks:
            return []
        retry = None
        if load.origin:
            prepared = prepare_requests(scenario.load, self.target)
            retry = RetryTarget(
                urls=[f"{url}{CHAT_COMPLETIONS_PATH}" for url in self.target.base_urls],
                bodies=[kind.body for kind in prepared],
                headers=[dict(kind.headers) for kind in prepared],
                origin=load.origin,
            )
        lines = [self.loaded.line_of("checks", position) for position in range(len(scenario.checks))]
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop:
            return loop.run(evaluate_checks(scenario.checks, collector, retry, scenario.gate, lines))

    def sweep(self, result: ScenarioResult) -> None:
        sweep = self.scenario.load.sweep
        assert sweep is not None
        trials: list[Trial] = []

        def run_trial(rate: float) -> bool:
            trials.append(self.measured_run(rate, f".trial-{len(trials) + 1}"))
            return trials[-1].passed

        search = find_capacity(sweep, run_trial)
        passing = [trial for trial in trials if trial.passed and trial.rate_per_s == search.passing]
        shown = passing[-1] if passing else trials[-1]
        result.sweep = SweepOutcome(search.passing, trials)
        result.load, result.measurements = shown.load, shown.measurements
        result.requests_file, result.series_file = shown.requests_file, shown.series_file
        result.verdicts = shown.verdicts + self.judge_capacity(shown.measurements, search.passing)
        result.trust, result.cost = shown.trust, shown.cost

    def measured_run(
        self, rate_per_s: float | None, suffix: str, collector: CheckCollector | None = None
    ) -> Trial:
        """Run the load once (at ``rate_per_s`` for a sweep trial), streaming records to disk."""
        name = self.scenario.name
        requests_file = self.run_dir / "requests" / f"{name}{suffix}.csv"
        series_file = self.run_dir / "series" / f"{name}{suffix}.csv"
        builder = MeasurementsBuilder(request_objectives(self.scenario.slo))
        series = SeriesBuilder(self.scenario.load.warmup)
        cost = self.cost_accumulator()
        with RequestsCSV(requests_file) as requests_csv:

            def sink(record: RequestRecord) -> None:
                builder.add(record)
                series.add(record)
                cost.add(record)
                requests_csv.write(record)
                if collector is not None:
                    collector.add(record)

            load = run_load_blocking(self.scenario.load, self.target, self.progress, sink, rate_per_s)
        write_series_csv(series.rows(), series_file)
        measurements = builder.build()
        return Trial(
            rate_per_s=rate_per_s or 0.0,
            load=load,
            measurements=measurements,
            verdicts=self.judge(measurements, SLOContext(cost=cost.cost)),
            trust=trust_verdict(measurements, self.scenario.load.max_send_lag_p99, self.scenario.gate),
            requests_file=requests_file,
            series_file=series_file,
            cost=cost.cost,
        )

    def cost_accumulator(self) -> CostAccumulator:
        prices = price_table(self.scenario.cost.prices if self.scenario.cost else {})
        kind_models = [request.model or self.target.default_model for request in self.scenario.load.requests]
        return CostAccumulator(prices, kind_models)

    def objectives(self) -> list[tuple[AnySLO, int | None]]:
        """Return every objective with its line: the slo list, then the cost section's limits."""
        listed: list[tuple[AnySLO, int | None]] = [
            (slo, self.loaded.line_of("slo", position)) for position, slo in enumerate(self.scenario.slo)
        ]
        for slo, location in self.scenario.cost_objectives():
            listed.append((slo, self.loaded.line_of(*location)))
        return listed

    def judge(self, measurements: Measurements, context: SLOContext) -> list[SLOVerdict]:
        """Judge every objective but capacity, which only the whole sweep can show."""
        scenario = self.scenario
        return [
            evaluate_slo(
                slo, measurements, scenario.gate, line, context=context, fault=scenario.fault_index(slo.fault)
            )
            for slo, line in self.objectives()
            if slo.metric != "capacity"
        ]

    def judge_capacity(self, measurements: Measurements, capacity_per_s: float | None) -> list[SLOVerdict]:
        scenario = self.scenario
        return [
            evaluate_slo(
                slo, measurements, scenario.gate, self.loaded.line_of("slo", position), capacity_per_s
            )
            for position, slo in enumerate(scenario.slo)
            if slo.metric == "capacity"
        ]


def _limited_tenants(scenario: Scenario) -> tuple[set[str], set[str]]:
    """Return the tenants with request limits and those with token limits."""
    tenants = scenario.stack.tenants.items()
    requests = {name for name, tenant in tenants if tenant.limits.requests_per_minute or tenant.limits.models}
    tokens = {name for name, tenant in tenants if tenant.limits.tokens_per_minute}
    return requests, tokens


def _align_fault_times(events: list[FaultEvent], fault_origin: float, load_origin: float) -> None:
    """Report fault times on the load's clock, like the request records (the Locust engine has none)."""
    shift = load_origin - fault_origin if load_origin else 0.0
    for event in events:
        event.applied_at_s = None if event.applied_at_s is None else event.applied_at_s - shift
        event.removed_at_s = None if event.removed_at_s is None else event.removed_at_s - shift
        event.restored_at_s = None if event.restored_at_s is None else event.restored_at_s - shift
