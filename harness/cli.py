"""The ``slogate`` command: run, validate and describe scenarios.

``slogate run`` wraps pytest with the slogate plugin, so its exit status is pytest's:
0 when every blocking gate passed, 1 when one failed, and pytest's other codes otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.faults.cli import add_arguments as add_fault_proxy_arguments
from harness.faults.cli import run as run_fault_proxy
from harness.reports.schema import summary_json_schema
from harness.runner import BACKENDS, new_run_id
from harness.scenario.errors import ScenarioError
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
    if args.target_url is not None:
        pytest_args.append(f"--target-url={args.target_url}")
    if args.api_key is not None:
        pytest_args.append(f"--api-key={args.api_key}")
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


def command_schema(args: argparse.Namespace) -> int:
    schema = summary_json_schema() if args.report else scenario_json_schema()
    print(json.dumps(schema, indent=args.indent))
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
    return command_schema(args)


if __name__ == "__main__":
    sys.exit(main())
