"""Run one scenario on a running stack: send its load, measure, and judge its SLOs."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from harness.load.engine import LoadResult, ProgressCallback, Target, run_load_blocking
from harness.metrics.summary import Measurements, summarize
from harness.reports.schema import Verdict
from harness.scenario.loader import LoadedScenario
from harness.scenario.model import Scenario
from harness.slo.evaluate import SLOVerdict, evaluate_slo
from harness.stack.base import Endpoints

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
    error: str | None = None
    """The reason the scenario could not run, such as a stack that failed to start."""
    logs: dict[str, Path] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        if self.error is not None:
            return "error"
        if any(verdict.blocks for verdict in self.verdicts):
            return "fail"
        if not all(verdict.passed for verdict in self.verdicts):
            return "warn"
        return "pass"

    @property
    def blocking_failures(self) -> list[SLOVerdict]:
        return [verdict for verdict in self.verdicts if verdict.blocks]


def scaled(loaded: LoadedScenario, settings: RunSettings) -> Scenario:
    return loaded.scenario.with_duration_scale(settings.duration_scale)


def run_scenario(
    loaded: LoadedScenario,
    endpoints: Endpoints,
    settings: RunSettings,
    progress: ProgressCallback | None = None,
) -> ScenarioResult:
    """Send the scenario's load to ``endpoints`` and judge every SLO."""
    scenario = scaled(loaded, settings)
    started_at = datetime.now(UTC)
    target = Target(
        base_urls=endpoints.gateway_urls,
        default_model=endpoints.models[0],
        api_keys=endpoints.api_keys,
    )
    load = run_load_blocking(scenario.load, target, progress)
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
    )
