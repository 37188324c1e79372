"""The ``slogate`` command: run, validate and describe scenarios; compare runs and rebuild reports.

``slogate run`` wraps pytest with the slogate plugin, so its exit status is pytest's:
0 when every blocking gate passed, 1 when one failed, and pytest's other codes otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.faults.cli import add_arguments as add_fault_proxy_arguments
from harness.faults.cli import run as run_fault_proxy
from harness.metrics.definitions import format_metric_value
from harness.reports.baseline import BaselineError, RunSide, compare_scenario, load_summary
from harness.reports.explain import describe_delta, format_change
from harness.reports.html import phase_label, write_html_report
from harness.reports.schema import ScenarioReport, summary_json_schema
from harness.reports.tables import format_text_table, render_markdown
from harness.runner import BACKENDS, new_run_id
from harness.scenario.errors import ScenarioError
from harness.scenario.gates import BaselineSpec
from harness.scenario.loader import duplicate_name_problem, find_scenario_files, load_scenario
from harness.scenario.schema import scenario_json_schema
from harness.stack.fault_proxy import FAULT_PROXY_MODES
from harness.stack.images import DEFAULT_GATEWAY_IMAGE, DEFAULT_REDIS_IMAGE
from harness.stack.local import DEFAULT_READY_TIMEOUT_S

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slogate", description="SLO gates for LLM services.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="run scenarios and gate on their SLOs",
        description="Run scenario files (or every YAML file under the given folders) through pytest. "
        "Arguments slogate does not know are passed to pytest, for example -x or -k smoke.",
    )
    run.add_argument("paths", nargs="+", type=Path, help="scenario files or folders")
    run.add_argument("--backend", default="local", choices=BACKENDS, help="stack backend (default: local)")
    run.add_argument(
        "--duration-scale", type=float, default=1.0, metavar="F", help="multiply every load duration by F"
    )
    run.add_argument(
        "--reports-dir", type=Path, default=Path("reports"), help="report folder (default: reports)"
    )
    run.add_argument("--run-id", default=None, help="name of the run's report folder (default: time-based)")
    run.add_argument(
        "--junitxml", type=Path, default=None, help="JUnit XML path (default: REPORTS_DIR/RUN_ID/junit.xml)"
    )
    run.add_argument(
        "--fault-proxy",
        default="auto",
        choices=FAULT_PROXY_MODES,
        help="fault proxy of the local stack: toxiproxy (toxiproxy-server from PATH), embedded, or auto",
    )
    run.add_argument(
        "--target-url",
        default=None,
        metavar="URL",
        help="with --backend external: base URL of the running gateway under test (no default)",
    )
    run.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="with --backend external: API key sent as 'Authorization: Bearer KEY'",
    )
    run.add_argument(
        "--docker-image",
        default=DEFAULT_GATEWAY_IMAGE,
        metavar="IMAGE",
        help="with --backend docker: image of the gateway, mock upstreams and fault proxy, never pulled "
        "(default: %(default)s, built by make offline-images)",
    )
    run.add_argument(
        "--docker-redis-image",
        default=DEFAULT_REDIS_IMAGE,
        metavar="IMAGE",
        help="with --backend docker: Redis image, never pulled (default: %(default)s)",
    )
    run.add_argument(
        "--stack-ready-timeout",
        type=float,
        default=DEFAULT_READY_TIMEOUT_S,
        metavar="SECONDS",
        help="how long each stack service may take to become ready",
    )

    run.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="PATH",
        help="compare every objective with an earlier run (its folder or summary.json)",
    )
    run.add_argument(
        "--baseline-gate",
        choices=("block", "warn"),
        default=None,
        help="block: a regression fails the run; warn: it is only reported (default: each scenario's "
        "baseline.gate, else its gate)",
    )

    run.add_argument(
        "--no-eval-cache",
        action="store_true",
        help="send every eval item and score it again, ignoring and not writing the eval cache",
    )
    run.add_argument(
        "--eval-cache",
        action="store_true",
        help="use the eval cache with --backend external too, where it is off by default because a "
        "redeploy behind the same URL would not invalidate it",
    )
    run.add_argument(
        "--eval-cache-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of the eval result cache (default: .slogate-cache/evals)",
    )
    run.add_argument(
        "--eval-junit-items",
        action="store_true",
        help="report a JUnit test case per dataset item and scorer, besides the one per scorer",
    )

    compare = commands.add_parser(
        "compare",
        help="compare two runs objective by objective",
        description="Compare CURRENT with BASELINE on both runs' raw samples, with the default "
        "significance and tolerances. Exits 1 when a regression is found.",
    )
    compare.add_argument("baseline", type=Path, help="the earlier run: its folder or summary.json")
    compare.add_argument("current", type=Path, help="the run to judge: its folder or summary.json")

    report = commands.add_parser(
        "report", help="rebuild report.html and summary.md of a run from its stored data"
    )
    report.add_argument("run", type=Path, help="the run folder, or its summary.json")

    validate = commands.add_parser("validate", help="check scenario files without running them")
    validate.add_argument("paths", nargs="+", type=Path, help="scenario files or folders")

    schema = commands.add_parser("schema", help="print the JSON Schema of the scenario format")
    schema.add_argument("--report", action="store_true", help="print the schema of summary.json instead")
    schema.add_argument("--indent", type=int, default=2)

    fault_proxy = commands.add_parser(
        "fault-proxy",
        help="run the embedded Toxiproxy-compatible fault proxy",
        description="Serve the Toxiproxy HTTP API and its toxics until SIGTERM or Ctrl-C.",
    )
    add_fault_proxy_arguments(fault_proxy)
    return parser


def _pytest_args(args: argparse.Namespace, files: Sequence[Path], extra: Sequence[str]) -> list[str]:
    run_id = args.run_id or new_run_id()
    junit = args.junitxml or args.reports_dir / run_id / "junit.xml"
    pytest_args = [
        *(str(path) for path in files),
        f"--backend={args.backend}",
        f"--duration-scale={args.duration_scale}",
        f"--reports-dir={args.reports_dir}",
        f"--run-id={run_id}",
        f"--junitxml={junit}",
        f"--stack-ready-timeout={args.stack_ready_timeout}",
        f"--fault-proxy={args.fault_proxy}",
        f"--docker-image={args.docker_image}",
        f"--docker-redis-image={args.docker_redis_image}",
        *extra,
    ]
    if importlib.util.find_spec("pytest_asyncio") is not None:
        # pytest-asyncio warns on every run in a folder without a pytest configuration that sets
        # this option. Its warning states that future versions default to "function", so use that.
        pytest_args += ["-o", "asyncio_default_fixture_loop_scope=function"]
    if args.target_url is not None:
        pytest_args.append(f"--target-url={args.target_url}")
    if args.api_key is not None:
        pytest_args.append(f"--api-key={args.api_key}")
    if args.baseline is not None:
        pytest_args.append(f"--baseline={args.baseline}")
    if args.baseline_gate is not None:
        pytest_args.append(f"--baseline-gate={args.baseline_gate}")
    if args.no_eval_cache:
        pytest_args.append("--no-eval-cache")
    if args.eval_cache:
        pytest_args.append("--eval-cache")
    if args.eval_cache_dir is not None:
        pytest_args.append(f"--eval-cache-dir={args.eval_cache_dir}")
    if args.eval_junit_items:
        pytest_args.append("--eval-junit-items")
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        pytest_args += ["-p", "harness.plugin"]
    return pytest_args


def _existing_scenario_files(paths: Sequence[Path]) -> list[Path] | str:
    """Return the scenario files under ``paths``, or an error message."""
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        return f"no such file or folder: {', '.join(missing)}"
    files = find_scenario_files(paths)
    if not files:
        return f"no scenario files (*.yaml, *.yml) under {', '.join(map(str, paths))}"
    return files


def command_run(args: argparse.Namespace, extra: Sequence[str]) -> int:
    import pytest

    files = _existing_scenario_files(args.paths)
    if isinstance(files, str):
        print(f"slogate run: {files}", file=sys.stderr)
        return EXIT_USAGE
    return int(pytest.main(_pytest_args(args, files, extra)))


def command_validate(args: argparse.Namespace) -> int:
    files = _existing_scenario_files(args.paths)
    if isinstance(files, str):
        print(f"slogate validate: {files}", file=sys.stderr)
        return EXIT_USAGE
    failed = 0
    names: dict[str, Path] = {}
    for path in files:
        try:
            loaded = load_scenario(path)
        except ScenarioError as exc:
            failed += 1
            print(exc, file=sys.stderr)
            continue
        duplicate = duplicate_name_problem(loaded, names)
        if duplicate is not None:
            failed += 1
            print(duplicate, file=sys.stderr)
            continue
        print(f"{path}: ok (scenario {loaded.scenario.name})")
    print(f"{len(files) - failed} valid, {failed} invalid", file=sys.stderr if failed else sys.stdout)
    return 1 if failed else 0


COMPARE_HEADERS = (
    "scenario",
    "objective",
    "phase",
    "baseline (n)",
    "current (n)",
    "change",
    "p-value",
    "effect",
    "result",
)


def _comparison_rows(report: ScenarioReport) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for slo in report.slos:
        delta = slo.baseline
        if delta is None:
            continue
        phase = phase_label(slo)
        rows.append(
            (
                report.name,
                slo.name,
                phase,
                f"{format_metric_value(slo.metric, delta.baseline_value)} ({delta.baseline_samples})",
                f"{format_metric_value(slo.metric, delta.current_value)} ({delta.current_samples})",
                format_change(delta),
                "-" if delta.p_value is None else f"{delta.p_value:.3g}",
                "-" if delta.effect_size is None else f"{delta.effect_size:+.2f}",
                delta.status.replace("_", " ").upper(),
            )
        )
    return rows


def command_compare(args: argparse.Namespace) -> int:
    try:
        baseline, baseline_dir = load_summary(args.baseline)
        current, current_dir = load_summary(args.current)
    except BaselineError as exc:
        print(f"slogate compare: {exc}", file=sys.stderr)
        return EXIT_USAGE
    source = str(baseline_dir / "summary.json")
    rows: list[tuple[str, ...]] = []
    regressions = 0
    current_names = {report.name for report in current.scenarios}
    not_compared = [
        f"{report.name}: not compared: only in the baseline run"
        for report in baseline.scenarios
        if report.name not in current_names
    ]
    for report in current.scenarios:
        previous = next((s for s in baseline.scenarios if s.name == report.name), None)
        if previous is None or report.measurements is None or previous.measurements is None:
            not_compared.append(f"{report.name}: not compared: not measured in both runs")
            continue
        try:
            sides = RunSide.read(report, current_dir), RunSide.read(previous, baseline_dir)
        except BaselineError as exc:
            not_compared.append(f"{report.name}: not compared: {exc}")
            continue
        compared = compare_scenario(*sides, BaselineSpec(), "block", source, baseline.run_id)
        rows += _comparison_rows(compared)
        regressions += len(compared.baseline.regressions) if compared.baseline else 0
        for slo in compared.slos:
            if slo.baseline is not None and slo.baseline.status == "regression":
                print(f"regression: {report.name}: {slo.name}: {describe_delta(slo)}", file=sys.stderr)
    for line in format_text_table(COMPARE_HEADERS, rows):
        print(line)
    for line in not_compared:
        print(line, file=sys.stderr)
    print(
        f"{regressions} regression(s) against baseline run {baseline.run_id}, "
        f"{len(not_compared)} scenario(s) not compared"
    )
    # A comparison that left a scenario out must not read as a clean result.
    return 1 if regressions or not_compared else 0


def command_report(args: argparse.Namespace) -> int:
    try:
        summary, run_dir = load_summary(args.run)
    except BaselineError as exc:
        print(f"slogate report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    (run_dir / "summary.md").write_text(render_markdown(summary), encoding="utf-8")
    html = write_html_report(summary, run_dir)
    print(f"wrote {run_dir / 'summary.md'} and {html}")
    return 0


def command_schema(args: argparse.Namespace) -> int:
    schema = summary_json_schema() if args.report else scenario_json_schema()
    try:
        print(json.dumps(schema, indent=args.indent))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped early (``| head``); send what is left to /dev/null so that Python's
        # own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "run":
        return command_run(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "validate":
        return command_validate(args)
    if args.command == "fault-proxy":
        return run_fault_proxy(args)
    if args.command == "compare":
        return command_compare(args)
    if args.command == "report":
        return command_report(args)
    return command_schema(args)


if __name__ == "__main__":
    sys.exit(main())
