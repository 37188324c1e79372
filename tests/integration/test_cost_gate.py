"""Cost limits gate a real run: a limit below the computed cost fails and shows both amounts."""

import json
from pathlib import Path

import pytest

from tests.conftest import scenario_text


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "-p", "no:cacheprovider",
        "-W", "ignore::pytest.PytestAssertRewriteWarning",
        "-o", "asyncio_default_fixture_loop_scope=function",
        "--reports-dir", "reports",
        "--run-id", "cost",
        *args,
    )  # fmt: skip


def write(pytester: pytest.Pytester, cost: str) -> Path:
    path = pytester.path / "tiny.yaml"
    path.write_text(scenario_text() + cost, encoding="utf-8")
    return path


def summary(pytester: pytest.Pytester) -> dict:  # type: ignore[type-arg]
    return json.loads((pytester.path / "reports" / "cost" / "summary.json").read_text())


def test_cost_limit_below_cost_fails(pytester: pytest.Pytester) -> None:
    path = write(pytester, "cost: {max_usd_per_1k_requests: $0.001}\n")
    result = run(pytester, str(path))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    scenario = summary(pytester)["scenarios"][0]
    cost = scenario["cost"]
    assert cost["requests"] == 10
    assert cost["per_1k_requests_usd"] > 0.001
    (verdict,) = [slo for slo in scenario["slos"] if slo["metric"] == "cost_per_1k_requests"]
    assert verdict["status"] == "fail"
    assert verdict["observed"] == pytest.approx(cost["per_1k_requests_usd"])
    result.stdout.fnmatch_lines(
        [
            "*tiny.yaml:15: SLO failed: cost_per_1k_requests <= $0.00100: "
            "observed $0.00*, limit max $0.00100, 10 samples"
        ]
    )


def test_cost_limits_above_cost_pass(pytester: pytest.Pytester) -> None:
    path = write(pytester, "cost: {max_usd_per_1k_requests: $1, max_usd_total: $0.01}\n")
    result = run(pytester, str(path))
    assert result.ret == pytest.ExitCode.OK
    scenario = summary(pytester)["scenarios"][0]
    assert [slo["status"] for slo in scenario["slos"]] == ["pass", "pass", "pass"]
    model = scenario["cost"]["models"][0]
    assert model["model"] == "mock-llm"
    assert scenario["gateway_counters"]["gateway-0"]["slogate_requests"] == {"200": 10.0}
    assert (pytester.path / "reports" / "cost" / scenario["gateway_metrics"]["gateway-0"]).is_file()
    assert model["completion_tokens"] == 40
    assert scenario["cost"]["total_usd"] == pytest.approx(
        (model["prompt_tokens"] * 0.15 + model["completion_tokens"] * 0.6) / 1e6
    )


def test_requests_written_as_parquet(pytester: pytest.Pytester) -> None:
    parquet = pytest.importorskip("pyarrow.parquet")
    result = run(pytester, str(write(pytester, "")))
    assert result.ret == pytest.ExitCode.OK
    scenario = summary(pytester)["scenarios"][0]
    assert scenario["requests_parquet"] == "requests/tiny.parquet"
    table = parquet.read_table(pytester.path / "reports" / "cost" / scenario["requests_parquet"])
    assert table.num_rows == 10
    assert table.column("status").to_pylist() == [200] * 10
    assert "report.html" in {path.name for path in (pytester.path / "reports" / "cost").iterdir()}


def test_scenario_price_overrides_shipped(pytester: pytest.Pytester) -> None:
    price = "{input_usd_per_million_tokens: 0, output_usd_per_million_tokens: 1000}"
    prices = f"cost:\n  prices: {{mock-llm: {price}}}\n"
    path = write(pytester, prices + "  max_usd_total: $0.01\n")
    result = run(pytester, str(path))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    cost = summary(pytester)["scenarios"][0]["cost"]
    assert cost["total_usd"] == pytest.approx(0.04)
    assert cost["models"][0]["price_source"] == "scenario cost.prices"
