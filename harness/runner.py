"""Run one scenario on a running stack: send its load with its faults, measure, and judge it."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import uvloop

from harness.checks.evaluate import CheckContext, CheckVerdict, evaluate_checks
from harness.faults.timeline import FaultEvent, run_faults
from harness.load.engine import LoadResult, ProgressCallback, Target, run_load
from harness.metrics.summary import Measurements, summarize
from harness.reports.schema import Verdict
from harness.scenario.loader import LoadedScenario
from harness.scenario.model import Scenario
from harness.slo.evaluate import SLOVerdict, evaluate_slo
from harness.stack.base import Endpoints, StackBackend

BACKENDS = ("local",)
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

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; available backends: {', '.join(BACKENDS)}")
        if not 0 < self.duration_scale <= MAX_DURATION_SCALE:
            raise ValueError(
                f"the duration scale must be greater than 0 and at most {MAX_DURATION_SCALE:g}, "
                f"got {self.duration_scale}"
            )

    @property
    def run_dir(self) -> Path:
        return self.reports_dir / self.run_id


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
    error: str | None = None
    """The reason the scenario could not run, such as a stack that failed to start."""
    logs: dict[str, Path] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        if self.error is not None:
            return "error"
        outcomes = [(v.passed, v.blocks) for v in self.verdicts] + [(c.passed, c.blocks) for c in self.checks]
        if any(blocks for _, blocks in outcomes):
            return "fail"
        if not all(passed for passed, _ in outcomes):
            return "warn"
        return "pass"


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
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop:
        load, faults = loop.run(_load_with_faults(scenario, target, backend, progress))
        checks = loop.run(_checks(loaded, scenario, load, endpoints))
    measurements = summarize(load.records)
    verdicts = [
        evaluate_slo(slo, measurements, scenario.gate, loaded.line_of("slo", position))
        for position, slo in enumerate(scenario.slo)
    ]
    return ScenarioResult(
        loaded=loaded,
        scenario=scenario,
        started_at=started_at,
        finished_at=datetime.now(UTC),
        backend=settings.backend,
        endpoints=endpoints,
        load=load,
        measurements=measurements,
        verdicts=verdicts,
        checks=checks,
        faults=faults,
    )


async def _load_with_faults(
    scenario: Scenario, target: Target, backend: StackBackend, progress: ProgressCallback | None
) -> tuple[LoadResult, list[FaultEvent]]:
    """Run the load and the fault timeline side by side; undo every fault whatever happens."""
    origin = time.monotonic()
    faults = asyncio.create_task(run_faults(scenario.faults, backend.apply_fault, origin))
    try:
        load = await run_load(scenario.load, target, progress)
    except BaseException:
        faults.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await faults
        raise
    events = await faults
    shift = load.origin - origin  # report fault times on the load's clock, like the records
    for event in events:
        event.applied_at_s = None if event.applied_at_s is None else event.applied_at_s - shift
        event.removed_at_s = None if event.removed_at_s is None else event.removed_at_s - shift
    return load, events


async def _checks(
    loaded: LoadedScenario, scenario: Scenario, load: LoadResult, endpoints: Endpoints
) -> list[CheckVerdict]:
    tenants = scenario.stack.tenants
    context = CheckContext(
        records=load.records,
        prepared=load.prepared,
        base_urls=endpoints.gateway_urls,
        origin=load.origin,
        request_limited_tenants={
            name
            for name, tenant in tenants.items()
            if tenant.limits.requests_per_minute or tenant.limits.models
        },
        token_limited_tenants={name for name, tenant in tenants.items() if tenant.limits.tokens_per_minute},
    )
    lines = [loaded.line_of("checks", position) for position in range(len(scenario.checks))]
    return await evaluate_checks(scenario.checks, context, scenario.gate, lines)
