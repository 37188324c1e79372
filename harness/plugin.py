"""pytest plugin: collects scenario YAML files, runs each on a managed stack, reports and gates.

A scenario item fails when a blocking SLO fails, so pytest's exit status is the gate. At the
end of the session the plugin writes ``<reports-dir>/<run-id>/summary.json`` and
``summary.md``, points ``<reports-dir>/latest`` at them and prints a verdict table.
"""

from __future__ import annotations

import atexit
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.load.progress import ProgressPrinter
from harness.reports.schema import RunSummary, ScenarioReport
from harness.reports.summary import build_summary, scenario_report
from harness.reports.tables import SLO_HEADERS, format_text_table, slo_rows
from harness.reports.writers import update_latest_link, write_requests_csv, write_summary
from harness.runner import BACKENDS, RunSettings, ScenarioResult, new_run_id, run_scenario, scaled
from harness.scenario.errors import ScenarioError
from harness.scenario.loader import SCENARIO_SUFFIXES, LoadedScenario, load_scenario
from harness.scenario.model import StackSpec
from harness.slo.evaluate import SLOVerdict
from harness.stack.base import StackBackend
from harness.stack.errors import StackError
from harness.stack.local import DEFAULT_READY_TIMEOUT_S, LocalStack
from harness.stack.pool import StackPool


@dataclass
class HarnessRun:
    """State of one pytest session's scenario run."""

    settings: RunSettings
    ready_timeout_s: float
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    reports: list[ScenarioReport] = field(default_factory=list)
    summary: RunSummary | None = None
    summary_path: Path | None = None

    @property
    def run_dir(self) -> Path:
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        return self.settings.run_dir

    def backend_factory(self) -> Callable[[StackSpec, Path], StackBackend]:
        def make(spec: StackSpec, workdir: Path) -> StackBackend:
            return LocalStack(spec, workdir, ready_timeout_s=self.ready_timeout_s)

        return make


RUN_KEY = pytest.StashKey[HarnessRun]()


class ScenarioFailed(Exception):
    """A blocking SLO of a scenario failed."""

    def __init__(self, failures: list[SLOVerdict]) -> None:
        self.failures = failures
        super().__init__(f"{len(failures)} blocking SLO(s) failed")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("slogate", "slogate SLO gates")
    group.addoption(
        "--backend",
        default="local",
        choices=BACKENDS,
        help="Stack backend that runs the scenarios (default: local).",
    )
    group.addoption(
        "--duration-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="Multiply every load duration by F, for example 0.1 for a quick run (default: 1).",
    )
    group.addoption(
        "--reports-dir", default="reports", metavar="DIR", help="Folder for run reports (default: reports)."
    )
    group.addoption("--run-id", default=None, help="Name of this run's report folder (default: time-based).")
    group.addoption(
        "--stack-ready-timeout",
        type=float,
        default=DEFAULT_READY_TIMEOUT_S,
        metavar="SECONDS",
        help=f"How long each stack service may take to become ready (default: {DEFAULT_READY_TIMEOUT_S:g}).",
    )
    parser.addini(
        "slogate_scenario_dirs",
        type="paths",
        default=[],
        help="Folders whose YAML files are scenarios, besides any folder named 'scenarios'.",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slogate_scenario: a scenario collected from a YAML file")
    try:
        settings = RunSettings(
            run_id=config.getoption("run_id") or new_run_id(),
            backend=config.getoption("backend"),
            duration_scale=config.getoption("duration_scale"),
            reports_dir=Path(config.getoption("reports_dir")),
        )
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[RUN_KEY] = HarnessRun(settings, config.getoption("stack_ready_timeout"))


def _named_on_command_line(config: pytest.Config, file_path: Path) -> bool:
    invocation_dir = config.invocation_params.dir
    for arg in config.args:
        named = (invocation_dir / arg.split("::")[0]).resolve()
        if named == file_path.resolve():
            return True
    return False


def _in_scenario_dir(config: pytest.Config, file_path: Path) -> bool:
    if "scenarios" in file_path.parts[:-1]:
        return True
    return any(
        file_path.resolve().is_relative_to(Path(d).resolve()) for d in config.getini("slogate_scenario_dirs")
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in SCENARIO_SUFFIXES:
        return None
    config = parent.config
    if _named_on_command_line(config, file_path) or _in_scenario_dir(config, file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group scenarios that share stack settings so each stack starts once."""
    first_seen: dict[str, int] = {}
    for item in items:
        if isinstance(item, ScenarioItem):
            first_seen.setdefault(StackPool.key(item.loaded.scenario.stack), len(first_seen))

    def group(item: pytest.Item) -> int:
        if isinstance(item, ScenarioItem):
            return 1 + first_seen[StackPool.key(item.loaded.scenario.stack)]
        return 0

    items.sort(key=group)


@pytest.fixture(scope="session")
def slogate_run(pytestconfig: pytest.Config) -> HarnessRun:
    """The settings and collected reports of this session's scenario run."""
    return pytestconfig.stash[RUN_KEY]


@pytest.fixture(scope="session")
def slogate_stack_pool(slogate_run: HarnessRun) -> Iterator[StackPool]:
    """Running stacks shared by every scenario with the same stack settings; stopped at session end."""
    pool = StackPool(slogate_run.backend_factory(), lambda: slogate_run.run_dir / "stacks")
    atexit.register(pool.close)
    try:
        yield pool
    finally:
        atexit.unregister(pool.close)
        pool.close()


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        try:
            loaded = load_scenario(self.path)
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from exc
        yield ScenarioItem.from_parent(self, name=loaded.scenario.name, loaded=loaded)


def _run_scenario_item(request: pytest.FixtureRequest, slogate_stack_pool: StackPool) -> None:
    item = request.node
    assert isinstance(item, ScenarioItem)
    item.run_on(slogate_stack_pool)


class ScenarioItem(pytest.Function):
    """One scenario as a pytest test; it takes fixtures like any test function."""

    def __init__(self, *, loaded: LoadedScenario, **kwargs: Any) -> None:
        super().__init__(callobj=_run_scenario_item, **kwargs)
        self.loaded = loaded
        self.add_marker(pytest.mark.slogate_scenario)
        if self.config.pluginmanager.hasplugin("timeout"):
            self.add_marker(pytest.mark.timeout(self._time_limit_s()))

    def _time_limit_s(self) -> float:
        """Return a generous limit: stack start, the scaled load, and the slowest last request."""
        run = self.config.stash[RUN_KEY]
        load = scaled(self.loaded, run.settings).load
        stack_start_s = run.ready_timeout_s * (2 + len(self.loaded.scenario.stack.upstreams))
        return stack_start_s + load.duration + load.timeout + 60

    def run_on(self, pool: StackPool) -> None:
        run = self.config.stash[RUN_KEY]
        started_at = datetime.now(UTC)
        try:
            backend, endpoints = pool.acquire(self.loaded.scenario.stack)
        except StackError as exc:
            self._record(run, self._failed_to_start(run, started_at, exc))
            raise
        result = run_scenario(self.loaded, endpoints, run.settings, self._progress_printer())
        result.logs = backend.logs()
        self._record(run, result)
        if result.blocking_failures:
            raise ScenarioFailed(result.blocking_failures)

    def _failed_to_start(self, run: HarnessRun, started_at: datetime, exc: StackError) -> ScenarioResult:
        return ScenarioResult(
            loaded=self.loaded,
            scenario=scaled(self.loaded, run.settings),
            started_at=started_at,
            finished_at=datetime.now(UTC),
            backend=run.settings.backend,
            error=f"the stack did not start: {exc}",
        )

    def _record(self, run: HarnessRun, result: ScenarioResult) -> None:
        requests_file = None
        if result.load is not None:
            requests_file = run.run_dir / "requests" / f"{result.scenario.name}.csv"
            write_requests_csv(result.load.records, requests_file)
        run.reports.append(scenario_report(result, run.run_dir, requests_file))

    def _progress_printer(self) -> ProgressPrinter | None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return None

        def write(text: str) -> None:
            suspended = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
            with suspended:
                reporter.write(text, flush=True)

        write("\n")
        return ProgressPrinter(write, bool(reporter.isatty), self.name)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, 0, f"scenario {self.name}"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ScenarioFailed):
            return "\n".join(_describe_failure(self.loaded, verdict) for verdict in excinfo.value.failures)
        if isinstance(excinfo.value, StackError):
            return f"the stack for scenario {self.name} did not start:\n{excinfo.value}"
        return super().repr_failure(excinfo)


def _describe_failure(loaded: LoadedScenario, verdict: SLOVerdict) -> str:
    place = f"{loaded.path}:{verdict.line}" if verdict.line else str(loaded.path)
    observed = verdict.format_value(verdict.observed)
    if verdict.observed is None:
        observed = "no data (0 samples)"
    return (
        f"{place}: SLO failed: {verdict.name}: observed {observed}, "
        f"limit {verdict.comparator} {verdict.format_value(verdict.limit)}, {verdict.samples} samples"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(RUN_KEY, None)
    if run is None or not run.reports:
        return
    run.summary = build_summary(run.settings, run.started_at, run.reports)
    run.summary_path, _ = write_summary(run.summary, run.run_dir)
    update_latest_link(run.run_dir)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is None or run.summary is None:
        return
    summary = run.summary
    terminalreporter.write_sep("=", f"slogate verdicts: {summary.verdict.upper()}", bold=True)
    lines = format_text_table(SLO_HEADERS, slo_rows(summary))
    terminalreporter.write_line(lines[0], bold=True)
    terminalreporter.write_line(lines[1])
    for line in lines[2:]:
        passed = line.rstrip().endswith("PASS")
        warned = line.rstrip().endswith("(warn)")
        terminalreporter.write_line(line, green=passed, yellow=warned, red=not passed and not warned)
    terminalreporter.write_line(f"reports: {run.summary_path} (and summary.md beside it)")
