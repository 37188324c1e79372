"""Eval gates on a real stack: the mock's wrong-answer rate, the eval cache, the judge, hooks and JUnit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from textwrap import dedent
from typing import Any
from xml.etree import ElementTree

import pytest

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO / "scenarios" / "datasets"


def run(pytester: pytest.Pytester, run_id: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "-p", "no:cacheprovider",
        "-W", "ignore::pytest.PytestAssertRewriteWarning",
        "-o", "asyncio_default_fixture_loop_scope=function",
        "--reports-dir", "reports",
        "--run-id", run_id,
        "--eval-cache-dir", "eval-cache",
        *args,
    )  # fmt: skip


def summary(pytester: pytest.Pytester, run_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((pytester.path / "reports" / run_id / "summary.json").read_text())
    return data


def arithmetic_eval(scorer: str) -> str:
    """Return an eval section that scores the arithmetic dataset with one scorer."""
    return f"""\
        eval:
          datasets:
            - name: arithmetic
              path: datasets/arithmetic.jsonl
              scorers:
                - {scorer}
        """


def scenario_with_eval(pytester: pytest.Pytester, eval_section: str, upstream: str = "") -> Path:
    shutil.copytree(DATASETS, pytester.path / "datasets", dirs_exist_ok=True)
    body = f"""\
        version: 1
        name: evals
        stack:
          upstreams:
            primary: {{ttft_ms: 1, tokens_per_s: 0, output_tokens: 4{upstream}}}
        load:
          model: open
          rate_per_s: 5
          duration: 1s
          requests:
            - messages: [{{role: user, content: "hello"}}]
              max_tokens: 4
        slo:
          - {{metric: error_rate, max: 0%}}
        """
    path = pytester.path / "evals.yaml"
    path.write_text(dedent(body) + dedent(eval_section), encoding="utf-8")
    return path


ARITHMETIC = """\
    eval:
      seed: 7
      datasets:
        - name: arithmetic
          path: datasets/arithmetic.jsonl
          scorers:
            - {type: numeric, abs_tol: 0.001, rel_tol: 0.001, min_pass_rate: 70%}
    """


def test_high_wrong_answer_rate_fails_gate(pytester: pytest.Pytester) -> None:
    path = scenario_with_eval(pytester, ARITHMETIC, upstream=", wrong_answer_rate: 80%")
    result = run(pytester, "wrong", str(path))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    (scorer,) = summary(pytester, "wrong")["scenarios"][0]["eval"]["scorers"]
    assert scorer["status"] == "fail"
    pass_rate = scorer["pass_rate"]
    assert pass_rate["estimate"] < 0.5
    assert pass_rate["low"] <= pass_rate["estimate"] <= pass_rate["high"] < 0.7
    assert pass_rate["confidence"] == 0.95
    # fnmatch reads [ and ] as a character class, so each is escaped as a class of one.
    interval_text = f"{pass_rate['estimate']:.1%} [[]{pass_rate['low']:.1%}, {pass_rate['high']:.1%}[]]"
    result.stdout.fnmatch_lines(
        [f"evals *arithmetic.numeric*{interval_text}*pass rate >= 70.0%*30*block*FAIL"]
    )
    result.stdout.fnmatch_lines(
        [f"*eval arithmetic.numeric: fail: pass rate {interval_text} at 95% confidence*"]
    )


def test_default_wrong_answer_rate_passes(pytester: pytest.Pytester) -> None:
    path = scenario_with_eval(pytester, ARITHMETIC)
    result = run(pytester, "right", str(path))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    report = summary(pytester, "right")["scenarios"][0]["eval"]
    (scorer,) = report["scorers"]
    assert scorer["status"] == "pass"
    assert scorer["pass_rate"]["low"] >= 0.7
    (dataset,) = report["datasets"]
    assert dataset["requests"] == 30
    assert dataset["prompt_tokens"] > 0
    assert dataset["cost_usd"] > 0
    records = (pytester.path / "reports" / "right" / report["results_file"]).read_text().splitlines()
    assert len(records) == 30
    first = json.loads(records[0])
    assert first["latency_s"] > 0
    assert set(first["scores"]) == {"arithmetic.numeric"}
    run_dir = pytester.path / "reports" / "right"
    assert "<h4>Scorer arithmetic.numeric</h4>" in (run_dir / "report.html").read_text()
    assert "| evals | arithmetic.numeric | 90.0% [74.4%, 96.5%] |" in (run_dir / "summary.md").read_text()


def test_eval_cache_skips_unchanged_items(pytester: pytest.Pytester) -> None:
    path = scenario_with_eval(pytester, ARITHMETIC)
    assert run(pytester, "first", str(path)).ret == pytest.ExitCode.OK
    second = run(pytester, "second", str(path))
    assert second.ret == pytest.ExitCode.OK
    report = summary(pytester, "second")["scenarios"][0]["eval"]
    assert report["from_cache"] == 30
    assert report["datasets"][0]["requests"] == 0
    second.stdout.fnmatch_lines(["evals: 30 of 30 eval outputs came from the eval cache (cache eval-cache)"])
    third = run(pytester, "third", str(path), "--no-eval-cache")
    assert third.ret == pytest.ExitCode.OK
    report = summary(pytester, "third")["scenarios"][0]["eval"]
    assert report["from_cache"] == 0
    assert report["cache_dir"] is None


def test_judge_through_gateway_scores(pytester: pytest.Pytester) -> None:
    eval_section = arithmetic_eval(
        '{type: llm_judge, rubric: "The answer must equal the reference.", min_mean: 0.7}'
    )
    path = scenario_with_eval(pytester, eval_section, upstream=", wrong_answer_rate: 0%")
    result = run(pytester, "judge", str(path))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    (scorer,) = summary(pytester, "judge")["scenarios"][0]["eval"]["scorers"]
    assert scorer["graded"] is True
    assert scorer["mean_score"]["estimate"] == 1.0, "the mock judges a right answer 10 out of 10"


def test_hook_scorer_and_junit_cases(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def is_short(output, item, max_chars):
            return len(output) <= max_chars

        def pytest_slogate_eval_scorers(config):
            return {"short": is_short}
        """
    )
    eval_section = arithmetic_eval(
        "{type: custom, name: short, function: short, options: {max_chars: 3}, min_pass_rate: 40%}"
    )
    path = scenario_with_eval(pytester, eval_section)
    junit = pytester.path / "junit.xml"
    result = run(pytester, "hook", str(path), f"--junitxml={junit}", "--eval-junit-items")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()[-3000:]
    (scorer,) = summary(pytester, "hook")["scenarios"][0]["eval"]["scorers"]
    assert scorer["type"] == "custom"
    assert scorer["failures"], "answers of four or more characters fail the custom scorer"
    cases = [case.get("name") for case in ElementTree.parse(junit).iter("testcase")]
    assert "evals[eval short]" in cases
    assert "evals[eval short][unit-km-m]" in cases
    assert len(cases) == 1 + 1 + 30
    allowed = [
        case.get("name")
        for case in ElementTree.parse(junit).iter("testcase")
        if case.find("skipped") is not None
    ]
    assert "evals[eval short][unit-km-m]" in allowed, (
        "a failed item under a passing gate is an expected failure"
    )
    assert "evals[eval short][add-1]" not in allowed


def test_bad_dataset_line_is_load_error(pytester: pytest.Pytester) -> None:
    path = scenario_with_eval(pytester, ARITHMETIC)
    dataset = pytester.path / "datasets" / "arithmetic.jsonl"
    lines = dataset.read_text().splitlines()
    lines[4] = '{"id": "broken", "input": "What is 1 + 1?", "expected": 2'
    dataset.write_text("\n".join(lines) + "\n")
    result = run(pytester, "broken", str(path))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*{dataset}:5:*: invalid JSON: *"])


def test_baseline_regression_flags_worse_model(pytester: pytest.Pytester) -> None:
    reported_only = arithmetic_eval("{type: numeric, abs_tol: 0.001}")
    path = scenario_with_eval(pytester, reported_only, upstream=", wrong_answer_rate: 0%")
    assert run(pytester, "before", str(path)).ret == pytest.ExitCode.OK
    scenario_with_eval(pytester, reported_only, upstream=", wrong_answer_rate: 80%")
    result = run(pytester, "after", str(path), "--baseline", "reports/before")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    scenario = summary(pytester, "after")["scenarios"][0]
    (scorer,) = scenario["eval"]["scorers"]
    assert scorer["status"] == "pass", "a scorer without thresholds only reports"
    assert scorer["baseline"]["status"] == "regression"
    assert scorer["baseline"]["baseline_value"] == 1.0
    assert scenario["baseline"]["regressions"] == ["eval arithmetic.numeric", "eval overall"]
    result.stdout.fnmatch_lines(["*eval arithmetic.numeric regressed: baseline 1.000, now in *"])
