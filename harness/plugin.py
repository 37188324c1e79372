"""pytest plugin: collects scenario YAML files, runs each on a managed stack, reports and gates.

A scenario item fails when a blocking SLO fails, so pytest's exit status is the gate. At the
end of the session the plugin writes ``<reports-dir>/<run-id>/summary.json`` and
``summary.md``, points ``<reports-dir>/latest`` at them and prints a verdict table.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness import hookspecs
from harness.evals import default_registry
from harness.evals.cache import DEFAULT_CACHE_DIR
from harness.evals.registry import ScorerRegistry
from harness.load.progress import ProgressPrinter
from harness.reports.baseline import BaselineError, RunSide, compare_scenario, load_summary, missing_baseline
from harness.reports.evals import (
    EVAL_HEADERS,
    cache_note,
    describe_eval_scorer,
    eval_failures,
    eval_rows,
    eval_warnings,
)
from harness.reports.explain import (
    baseline_problems,
    blocking_baseline_problems,
    blocking_failures,
    describe_failed_scenario,
    describe_slo,
)
from harness.reports.html import write_html_report
from harness.reports.schema import RunSummary, ScenarioReport
from harness.reports.summary import build_summary, scenario_report
from harness.reports.tables import SLO_HEADERS, format_text_table, slo_rows
from harness.reports.writers import update_latest_link, write_summary
from harness.runner import BACKENDS, RunSettings, ScenarioResult, new_run_id, run_scenario, scaled
from harness.scenario.base import GateMode
from harness.scenario.errors import ScenarioError
from harness.scenario.loader import SCENARIO_SUFFIXES, LoadedScenario, duplicate_name_problem, load_scenario
from harness.scenario.stack import StackSpec
from harness.stack.base import StackBackend
from harness.stack.errors import StackError, UnsupportedFault
from harness.stack.external import ExternalStack
from harness.stack.fault_proxy import FAULT_PROXY_MODES, FaultProxyMode
from harness.stack.images import DEFAULT_GATEWAY_IMAGE, DEFAULT_REDIS_IMAGE, DockerImages
from harness.stack.local import DEFAULT_READY_TIMEOUT_S, LocalStack
from harness.stack.pool import StackPool


@dataclass(frozen=True)
class Baseline:
    """A previous run that scenarios are compared with."""

    summary: RunSummary
    run_dir: Path
    source: str

    @classmethod
    def load(cls, path: Path) -> Baseline:
        summary, run_dir = load_summary(path)
        return cls(summary, run_dir, str(run_dir / "summary.json"))

    def compare(
        self, report: ScenarioReport, run_dir: Path, loaded: LoadedScenario, gate: GateMode | None
    ) -> ScenarioReport:
        """Return ``report`` with every objective compared with this baseline's run of the scenario."""
        scenario = loaded.scenario
        gate = gate or scenario.baseline.gate or scenario.gate
        run_id = self.summary.run_id
        if report.error is not None or report.measurements is None:
            return report
        previous = next((s for s in self.summary.scenarios if s.name == report.name), None)
        if previous is None or previous.measurements is None:
            reason = f"the baseline run {run_id} has no measured scenario {report.name!r}"
            return missing_baseline(report, self.source, run_id, gate, reason)
        try:
            current, before = RunSide.read(report, run_dir), RunSide.read(previous, self.run_dir)
        except BaselineError as exc:
            return missing_baseline(report, self.source, run_id, gate, str(exc))
        return compare_scenario(current, before, scenario.baseline, gate, self.source, run_id)


@dataclass
class HarnessRun:
    """State of one pytest session's scenario run."""

    settings: RunSettings
    ready_timeout_s: float
    fault_proxy: FaultProxyMode = "auto"
    docker_images: DockerImages = field(default_factory=DockerImages)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    reports: list[ScenarioReport] = field(default_factory=list)
    collection_errors: list[str] = field(default_factory=list)
    scenario_names: dict[str, Path] = field(default_factory=dict)
    scenario_items: int = 0
    uncollected_yaml: int = 0
    """YAML files outside the scenario folders, which pytest therefore did not collect."""
    summary: RunSummary | None = None
    summary_path: Path | None = None
    baseline: Baseline | None = None
    baseline_gate: GateMode | None = None
    """Overrides each scenario's baseline gate when set (--baseline-gate)."""
    eval_junit_items: bool = False
    """Add a JUnit test case per dataset item and scorer, besides one per scorer."""
    scorers: ScorerRegistry | None = None
    """Custom eval scorers: register_scorer's and the pytest_slogate_eval_scorers hook's."""

    def scorer_registry(self, config: pytest.Config) -> ScorerRegistry:
        """Return this run's custom scorers, asking the hook for its scorers the first time."""
        if self.scorers is None:
            registry = default_registry().copy()
            for scorers in config.hook.pytest_slogate_eval_scorers(config=config):
                for name, function in (scorers or {}).items():
                    registry.register(name, function)
            self.scorers = registry
        return self.scorers

    def report_named(self, name: str) -> ScenarioReport | None:
        return next((report for report in self.reports if report.name == name), None)

    @property
    def run_dir(self) -> Path:
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        return self.settings.run_dir

    def backend_factory(self) -> Callable[[StackSpec, Path], StackBackend]:
        settings = self.settings

        def make(spec: StackSpec, workdir: Path) -> StackBackend:
            if settings.backend == "external":
                assert settings.target_url is not None
                return ExternalStack(spec, settings.target_url, settings.api_key, self.ready_timeout_s)
            if settings.backend == "docker":
                # Imported here: docker and testcontainers add a quarter second to every pytest start.
                from harness.stack.docker import DockerStack

                return DockerStack(
                    spec,
                    workdir,
                    run_id=settings.run_id,
                    images=self.docker_images,
                    ready_timeout_s=self.ready_timeout_s,
                )
            return LocalStack(
                spec, workdir, ready_timeout_s=self.ready_timeout_s, fault_proxy=self.fault_proxy
            )

        return make


RUN_KEY = pytest.StashKey[HarnessRun]()


class ScenarioFailed(Exception):
    """A blocking SLO of a scenario failed."""

    def __init__(self, report: ScenarioReport) -> None:
        self.report = report
        super().__init__(describe_failed_scenario(report))


class SLOWarning(UserWarning):
    """An SLO with ``gate: warn`` failed; the run still passes."""


EXTERNAL_CACHE_OFF = (
    "eval cache off for --backend external: a redeploy behind the same URL would leave stale outputs "
    "in it; pass --eval-cache to use it anyway"
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


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
    group.addoption(
        "--fault-proxy",
        default="auto",
        choices=FAULT_PROXY_MODES,
        help="Fault proxy of the local stack: toxiproxy-server from PATH (toxiproxy), slogate's embedded "
        "Toxiproxy-compatible server (embedded), or the first that is available (auto, the default).",
    )
    group.addoption(
        "--target-url",
        default=None,
        metavar="URL",
        help="With --backend external: base URL of the running gateway under test (no default).",
    )
    group.addoption(
        "--api-key",
        default=None,
        metavar="KEY",
        help="With --backend external: API key sent as 'Authorization: Bearer KEY'.",
    )
    group.addoption(
        "--docker-image",
        default=DEFAULT_GATEWAY_IMAGE,
        metavar="IMAGE",
        help="With --backend docker: image of the gateway, mock upstreams and fault proxy, never pulled "
        f"(default: {DEFAULT_GATEWAY_IMAGE}, built by make offline-images).",
    )
    group.addoption(
        "--docker-redis-image",
        default=DEFAULT_REDIS_IMAGE,
        metavar="IMAGE",
        help=f"With --backend docker: Redis image, never pulled (default: {DEFAULT_REDIS_IMAGE}).",
    )
    group.addoption(
        "--baseline",
        default=None,
        metavar="PATH",
        help="Compare every objective with this earlier run (its folder or summary.json) and flag "
        "significant regressions (no default).",
    )
    group.addoption(
        "--baseline-gate",
        default=None,
        choices=("block", "warn"),
        help="block: a regression fails the run; warn: it is only reported. Default: each scenario's "
        "baseline.gate, else its gate.",
    )
    group.addoption(
        "--no-eval-cache",
        action="store_true",
        default=False,
        help="Send every eval item and score it again, ignoring and not writing the eval cache.",
    )
    group.addoption(
        "--eval-cache",
        action="store_true",
        default=False,
        help="Use the eval cache with --backend external too, where it is off by default because a "
        "redeploy behind the same URL would not invalidate it.",
    )
    group.addoption(
        "--eval-cache-dir",
        default=str(DEFAULT_CACHE_DIR),
        metavar="DIR",
        help=f"Folder of the eval result cache (default: {DEFAULT_CACHE_DIR}).",
    )
    group.addoption(
        "--eval-junit-items",
        action="store_true",
        default=False,
        help="Report a test per dataset item and scorer, besides the one per scorer.",
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
            target_url=config.getoption("target_url"),
            api_key=config.getoption("api_key"),
            eval_cache_dir=None
            if config.getoption("no_eval_cache")
            else Path(config.getoption("eval_cache_dir")),
            eval_cache_external=config.getoption("eval_cache"),
        )
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    fault_proxy = config.getoption("fault_proxy")
    if settings.backend == "docker" and fault_proxy == "toxiproxy":
        raise pytest.UsageError(
            "--fault-proxy toxiproxy applies to the local backend; the docker backend runs the embedded "
            "fault proxy from the gateway image, so leave --fault-proxy at auto"
        )
    images = DockerImages(config.getoption("docker_image"), config.getoption("docker_redis_image"))
    run = HarnessRun(
        settings, config.getoption("stack_ready_timeout"), fault_proxy=fault_proxy, docker_images=images
    )
    baseline = config.getoption("baseline")
    if baseline is not None:
        try:
            run.baseline = Baseline.load(Path(baseline))
        except BaselineError as exc:
            raise pytest.UsageError(f"--baseline: {exc}") from None
    run.baseline_gate = config.getoption("baseline_gate")
    run.eval_junit_items = config.getoption("eval_junit_items")
    config.stash[RUN_KEY] = run


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
    config.stash[RUN_KEY].uncollected_yaml += 1
    return None


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    if isinstance(collector, ScenarioFile) and report.failed:
        collector.config.stash[RUN_KEY].collection_errors.append(str(report.longrepr))
    return report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Group scenarios that share stack settings so each stack starts once."""
    config.stash[RUN_KEY].scenario_items = sum(isinstance(item, ScenarioItem) for item in items)
    first_seen: dict[str, int] = {}
    for item in items:
        if isinstance(item, ScenarioItem):
            first_seen.setdefault(StackPool.key(item.loaded.scenario.stack), len(first_seen))

    def group(item: pytest.Item) -> int:
        if isinstance(item, ScenarioItem):
            return 1 + first_seen[StackPool.key(item.loaded.scenario.stack)]
        if isinstance(item, EvalScorerItem):
            return 1 + first_seen.get(item.stack_key, len(first_seen))  # right after its scenario
        return 0

    items.sort(key=group)


@pytest.fixture(scope="session")
def slogate_run(pytestconfig: pytest.Config) -> HarnessRun:
    """Return this session's scenario run: its settings and the reports collected so far."""
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
        run = self.config.stash[RUN_KEY]
        try:
            loaded = load_scenario(self.path, run.scorer_registry(self.config))
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from exc
        duplicate = duplicate_name_problem(loaded, run.scenario_names)
        if duplicate is not None:
            raise self.CollectError(str(duplicate))
        name = loaded.scenario.name
        yield ScenarioItem.from_parent(self, name=name, loaded=loaded)
        if loaded.eval_plan is None:
            return
        for dataset, scorer, _ in loaded.eval_plan.scorers():
            yield EvalScorerItem.from_parent(
                self, name=f"{name}[eval {scorer.name}]", loaded=loaded, scorer=scorer.name
            )
            if run.eval_junit_items:
                for item in dataset.items:
                    item_name = f"{name}[eval {scorer.name}][{item.id}]"
                    yield EvalScorerItem.from_parent(
                        self, name=item_name, loaded=loaded, scorer=scorer.name, item=item.id
                    )


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
        return stack_start_s + load.time_limit_s() + 60

    def run_on(self, pool: StackPool) -> None:
        run = self.config.stash[RUN_KEY]
        started_at = datetime.now(UTC)
        try:
            backend, endpoints = pool.acquire(self.loaded.scenario.stack)
        except StackError as exc:
            self._record(run, self._failed_run(run, started_at, f"the stack did not start: {exc}"))
            raise
        try:
            result = run_scenario(self.loaded, backend, endpoints, run.settings, self._progress_printer())
        except UnsupportedFault as exc:
            self._record(run, self._failed_run(run, started_at, f"the scenario did not run: {exc}"))
            raise
        except Exception as exc:
            self._record(
                run, self._failed_run(run, started_at, f"the scenario crashed: {type(exc).__name__}: {exc}")
            )
            raise
        result.logs = backend.logs()
        report = self._record(run, result)
        failed_trust = [report.trust] if report.trust is not None and report.trust.status != "pass" else []
        for slo in [*report.slos, *failed_trust]:
            self.user_properties.append((f"slo: {slo.name}", describe_slo(slo)))
            if slo.status != "pass" and slo.gate == "warn":
                warnings.warn(SLOWarning(f"{self.name}: {slo.name}: {describe_slo(slo)}"), stacklevel=1)
        for check in report.checks:
            self.user_properties.append((f"check: {check.name}", f"{check.status}: {check.detail}"))
            if check.status != "pass" and check.gate == "warn":
                warnings.warn(SLOWarning(f"{self.name}: check {check.name}: {check.detail}"), stacklevel=1)
        for line in eval_failures(report.eval, blocking_only=False):
            self.user_properties.append(("eval", line))
        for line in eval_warnings(report.eval):
            warnings.warn(SLOWarning(f"{self.name}: {line}"), stacklevel=1)
        for problem in baseline_problems(report):
            self.user_properties.append(("baseline", problem))
            if report.baseline is not None and report.baseline.gate == "warn":
                warnings.warn(SLOWarning(f"{self.name}: {problem}"), stacklevel=1)
        if (
            blocking_failures(report)
            or blocking_baseline_problems(report)
            or eval_failures(report.eval, True)
        ):
            raise ScenarioFailed(report)

    def _failed_run(self, run: HarnessRun, started_at: datetime, error: str) -> ScenarioResult:
        return ScenarioResult(
            loaded=self.loaded,
            scenario=scaled(self.loaded, run.settings),
            started_at=started_at,
            finished_at=datetime.now(UTC),
            backend=run.settings.backend,
            error=error,
        )

    def _record(self, run: HarnessRun, result: ScenarioResult) -> ScenarioReport:
        report = scenario_report(result, run.run_dir, result.requests_file)
        if run.baseline is not None:
            report = run.baseline.compare(report, run.run_dir, self.loaded, run.baseline_gate)
        run.reports.append(report)
        return report

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
            return str(excinfo.value)
        if isinstance(excinfo.value, UnsupportedFault):
            return f"scenario {self.name} did not run:\n{excinfo.value}"
        if isinstance(excinfo.value, StackError):
            return f"the stack for scenario {self.name} did not start:\n{excinfo.value}"
        return super().repr_failure(excinfo)


class EvalScorerItem(pytest.Item):
    """One eval scorer of a scenario (or one dataset item of it), judged after the scenario ran.

    These items exist for JUnit: each is a test case that passes or fails with its scorer.
    """

    def __init__(
        self, *, loaded: LoadedScenario, scorer: str, item: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.scenario = loaded.scenario.name
        self.stack_key = StackPool.key(loaded.scenario.stack)
        self.scorer = scorer
        self.item = item

    def runtest(self) -> None:
        run = self.config.stash[RUN_KEY]
        report = run.report_named(self.scenario)
        if report is None or report.eval is None:
            raise EvalFailed(f"scenario {self.scenario} produced no eval results; see its own test")
        result = next(scorer for scorer in report.eval.scorers if scorer.name == self.scorer)
        if self.item is not None:
            self._judge_item(
                run, report.eval.results_file, result.status != "pass" and result.gate == "block"
            )
            return
        self.user_properties.append(("eval", describe_eval_scorer(result)))
        if result.status == "pass":
            return
        if result.gate == "warn":
            warnings.warn(SLOWarning(f"{self.name}: {describe_eval_scorer(result)}"), stacklevel=1)
            return
        raise EvalFailed(describe_eval_scorer(result))

    def _judge_item(self, run: HarnessRun, results_file: str | None, gate_failed: bool) -> None:
        """Fail a failed item when its scorer's blocking gate failed; else mark it xfail.

        A gate allows some items to fail, so a failed item under a passing (or warning) gate
        shows as an expected failure, and the exit status still follows the gates alone.
        """
        assert results_file is not None
        path = run.settings.run_dir / results_file
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record["item"] != self.item or self.scorer not in record["scores"]:
                continue
            score = record["scores"][self.scorer]
            self.user_properties.append((f"repeat {record['repeat']}", f"score {score['value']:.3g}"))
            if score["passed"]:
                continue
            reason = f"repeat {record['repeat']}: {score['reason']}"
            if gate_failed:
                raise EvalFailed(reason)
            pytest.xfail(f"{reason} (the scorer's gate allows it)")

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, 0, f"eval {self.scorer} of scenario {self.scenario}"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, EvalFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class EvalFailed(Exception):
    """An eval scorer, or one dataset item of it, did not pass."""


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = session.config.stash.get(RUN_KEY, None)
    if run is None:
        return
    errors = list(run.collection_errors)
    if exitstatus == pytest.ExitCode.INTERRUPTED and run.scenario_items and not errors:
        errors.append("the run was interrupted before every scenario finished")
    if not run.reports and not errors:
        return
    run.summary = build_summary(run.settings, run.started_at, run.reports, errors)
    run.summary_path, _ = write_summary(run.summary, run.run_dir)
    write_html_report(run.summary, run.run_dir)
    update_latest_link(run.run_dir)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is None:
        return
    if run.summary is None:
        if run.uncollected_yaml and not run.scenario_items:
            terminalreporter.write_line(
                f"slogate: {run.uncollected_yaml} YAML file(s) were not collected as scenarios, because only "
                "files under a folder named 'scenarios' (or listed in slogate_scenario_dirs) are; name the "
                "files on the command line, or use `slogate run FOLDER`",
                yellow=True,
            )
        return
    summary = run.summary
    terminalreporter.write_sep("=", f"slogate verdicts: {summary.verdict.upper()}", bold=True)
    rows = slo_rows(summary)
    if rows:
        _write_verdict_table(terminalreporter, SLO_HEADERS, rows)
    eval_table = [row for scenario in summary.scenarios for row in eval_rows(scenario)]
    if eval_table:
        terminalreporter.write_line("")
        _write_verdict_table(terminalreporter, EVAL_HEADERS, eval_table)
    for scenario in summary.scenarios:
        if scenario.eval is not None:
            terminalreporter.write_line(f"{scenario.name}: {cache_note(scenario.eval)}")
    cache_refused = run.settings.eval_cache_dir is not None and run.settings.effective_eval_cache_dir is None
    if eval_table and cache_refused:
        terminalreporter.write_line(EXTERNAL_CACHE_OFF)
    for error in summary.errors:
        terminalreporter.write_line(f"error: {error.splitlines()[0]}", red=True)
    for scenario in summary.scenarios:
        for problem in baseline_problems(scenario):
            blocking = scenario.baseline is not None and scenario.baseline.gate == "block"
            terminalreporter.write_line(f"baseline: {problem}", red=blocking, yellow=not blocking)
    terminalreporter.write_line(f"reports: {run.summary_path} (and summary.md and report.html beside it)")


def _write_verdict_table(
    terminalreporter: pytest.TerminalReporter, headers: tuple[str, ...], rows: list[tuple[str, ...]]
) -> None:
    """Write a table whose last column is the result: green PASS, yellow (warn), red otherwise."""
    lines = format_text_table(headers, rows)
    terminalreporter.write_line(lines[0], bold=True)
    terminalreporter.write_line(lines[1])
    for line in lines[2:]:
        passed = line.rstrip().endswith("PASS")
        warned = line.rstrip().endswith("(warn)")
        terminalreporter.write_line(line, green=passed, yellow=warned, red=not passed and not warned)
