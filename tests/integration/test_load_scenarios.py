"""Whole scenarios through the plugin: sweeps, the external backend, untrustworthy runs, reports."""

import csv
import json
from collections.abc import Callable
from textwrap import dedent

import pytest

from tests.conftest import scenario_text

MockFactory = Callable[..., str]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "-p", "no:cacheprovider",
        "-W", "ignore::pytest.PytestAssertRewriteWarning",
        "-o", "asyncio_default_fixture_loop_scope=function",
        "--reports-dir", "reports",
        "--run-id", "test-run",
        *args,
    )  # fmt: skip


def summary(pytester: pytest.Pytester) -> dict:  # type: ignore[type-arg]
    return json.loads((pytester.path / "reports" / "test-run" / "summary.json").read_text())


SWEEP = """\
    version: 1
    name: capacity
    load:
      model: open
      stream: false
      duration: 2s
      warmup: 200ms
      timeout: 5s
      sweep: {start_rate_per_s: 10, max_rate_per_s: 160, precision: 5%, max_trials: 10}
      requests:
        - messages: [{role: user, content: "hello"}]
    slo:
      - {metric: e2e_latency, percentile: 99, max: 200ms}
      - {metric: error_rate, max: 0%}
      - {metric: capacity, min: 20/s}
    """


def test_sweep_finds_mock_capacity(pytester: pytest.Pytester, mock_llm_factory: MockFactory) -> None:
    # Four requests at a time, 100 ms each: the mock serves at most 40 requests/s.
    url = mock_llm_factory("--max-concurrency", "4", "--ttft-ms", "100", "--tokens-per-s", "0")
    path = pytester.path / "capacity.yaml"
    path.write_text(dedent(SWEEP), encoding="utf-8")
    result = run(pytester, str(path), "--backend", "external", "--target-url", url)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    scenario = summary(pytester)["scenarios"][0]
    capacity = scenario["sweep"]["capacity_per_s"]
    assert 36 <= capacity <= 44, scenario["sweep"]["trials"]
    assert any(not trial["passed"] for trial in scenario["sweep"]["trials"])
    assert [slo["status"] for slo in scenario["slos"]] == ["pass", "pass", "pass"]
    assert (pytester.path / "reports" / "test-run" / "requests" / "capacity.trial-1.csv").exists()


def test_external_backend_runs_against_given_url(
    pytester: pytest.Pytester, mock_llm_factory: MockFactory
) -> None:
    url = mock_llm_factory("--ttft-ms", "5", "--tokens-per-s", "0", "--output-tokens", "4")
    path = pytester.path / "tiny.yaml"
    path.write_text(
        scenario_text().replace(
            "stack:\n  upstreams:\n    primary: {ttft_ms: 10, tokens_per_s: 0, output_tokens: 4}\n", ""
        ),
        encoding="utf-8",
    )
    result = run(pytester, str(path), "--backend", "external", "--target-url", url + "/v1/")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    scenario = summary(pytester)["scenarios"][0]
    assert scenario["stack"]["gateway_urls"] == [url]
    assert scenario["measurements"]["successes"] == 10
    assert not (pytester.path / "reports" / "test-run" / "stacks").exists()


def test_external_backend_rejects_stack_settings(
    pytester: pytest.Pytester, mock_llm_factory: MockFactory
) -> None:
    url = mock_llm_factory()
    path = pytester.path / "tiny.yaml"
    path.write_text(scenario_text(), encoding="utf-8")
    result = run(pytester, str(path), "--backend", "external", "--target-url", url)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*these stack settings need a managed stack: stack.upstreams*--backend local*"]
    )


def test_external_backend_needs_url(pytester: pytest.Pytester) -> None:
    path = pytester.path / "tiny.yaml"
    path.write_text(scenario_text(), encoding="utf-8")
    result = run(pytester, str(path), "--backend", "external")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*the external backend needs --target-url URL*"])


def test_lagging_generator_fails_gate(pytester: pytest.Pytester) -> None:
    text = scenario_text().replace("  duration: 1s\n", "  duration: 1s\n  max_send_lag_p99: 1us\n")
    path = pytester.path / "tiny.yaml"
    path.write_text(text, encoding="utf-8")
    result = run(pytester, str(path))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*load generator on schedule: send_lag p99 <= 0.001ms*", "*untrustworthy*"])
    scenario = summary(pytester)["scenarios"][0]
    assert scenario["verdict"] == "fail"
    assert scenario["measurements"]["trustworthy"] is False
    assert scenario["trust"]["status"] == "fail"
    assert [slo["status"] for slo in scenario["slos"]] == ["pass"]


def test_run_writes_series_and_llm_metrics(pytester: pytest.Pytester) -> None:
    upstream = "{ttft_ms: 20, tokens_per_s: 200, output_tokens: 8, chunk_tokens: 2}"
    text = scenario_text(duration="2s", upstream=upstream).replace("max_tokens: 4", "max_tokens: 8")
    path = pytester.path / "tiny.yaml"
    path.write_text(text, encoding="utf-8")
    result = run(pytester, str(path))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    measurements = summary(pytester)["scenarios"][0]["measurements"]
    assert measurements["itl"]["count"] == 20 * (8 - 2)
    assert measurements["tpot"]["percentiles_ms"]["p50"] == pytest.approx(5.0, abs=2.0)
    assert measurements["goodput_per_s"] == measurements["throughput_per_s"]
    assert measurements["output_throughput_per_s"] > 0
    series_file = pytester.path / "reports" / "test-run" / summary(pytester)["scenarios"][0]["series_file"]
    rows = list(csv.DictReader(series_file.open(encoding="utf-8")))
    assert sum(int(row["started"]) for row in rows) == 20
    assert rows[0]["e2e_p50_ms"]
