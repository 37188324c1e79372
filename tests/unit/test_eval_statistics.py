"""Bootstrap intervals of eval results and the straddle rule that turns them into gate statuses."""

from __future__ import annotations

import pytest

from harness.evals import EvalItem, bootstrap_interval, score_items, threshold_status
from harness.evals.builtin import ExactMatch
from harness.evals.statistics import Interval, wilson_interval
from harness.scenario.evals import Normalization


def test_bootstrap_interval_is_reproducible() -> None:
    values = [1.0] * 27 + [0.0] * 3
    first = bootstrap_interval(values, 0.95, 2000, seed=7)
    second = bootstrap_interval(values, 0.95, 2000, seed=7)
    assert first == second


def test_bootstrap_interval_brackets_estimate() -> None:
    values = [1.0] * 27 + [0.0] * 3
    result = bootstrap_interval(values, 0.95, 4000, seed=1)
    assert result.estimate == pytest.approx(0.9)
    assert result.low < 0.9 < result.high
    assert result.samples == 30
    assert result.confidence == 0.95


def test_bootstrap_interval_width_matches_binomial() -> None:
    # For p = 0.9 and n = 30 the standard error is sqrt(0.9 * 0.1 / 30) = 0.0548, so a 95% interval
    # spans about 2 * 1.96 * 0.0548 = 0.215; a percentile bootstrap of 0/1 data comes close to that.
    result = bootstrap_interval([1.0] * 27 + [0.0] * 3, 0.95, 10000, seed=3)
    assert 0.17 <= result.high - result.low <= 0.25


def test_bootstrap_interval_narrows_with_confidence() -> None:
    values = [1.0] * 20 + [0.0] * 10
    wide = bootstrap_interval(values, 0.99, 4000, seed=1)
    narrow = bootstrap_interval(values, 0.8, 4000, seed=1)
    assert wide.low < narrow.low
    assert wide.high > narrow.high


def test_bootstrap_interval_of_constant_values() -> None:
    result = bootstrap_interval([1.0] * 10, 0.95, 1000, seed=0)
    assert (result.low, result.estimate, result.high) == (1.0, 1.0, 1.0)


def test_bootstrap_interval_needs_values() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_interval([], 0.95, 1000, seed=0)


def test_straddle_rule_passes_on_lower_bound() -> None:
    assert threshold_status(Interval(0.95, 0.85, 1.0, 0.95, 30), 0.85) == "pass"


def test_straddle_rule_fails_below_upper_bound() -> None:
    assert threshold_status(Interval(0.5, 0.3, 0.69, 0.95, 30), 0.7) == "fail"


def test_straddle_rule_point_above_interval_straddling() -> None:
    # The estimate clears the threshold, but the interval reaches below it: inconclusive, not pass.
    assert threshold_status(Interval(0.9, 0.78, 1.0, 0.95, 30), 0.8) == "inconclusive"


def test_straddle_rule_point_below_interval_straddling() -> None:
    assert threshold_status(Interval(0.75, 0.6, 0.9, 0.95, 30), 0.8) == "inconclusive"


def test_straddle_rule_without_data() -> None:
    assert threshold_status(None, 0.8) == "no_data"


def test_score_items_reports_pass_rate_interval() -> None:
    items = [
        EvalItem(id=str(n), messages=({"role": "user", "content": "q"},), expected="yes") for n in range(20)
    ]
    outputs = ["yes"] * 18 + ["no"] * 2
    (outcome,) = score_items(items, outputs, [ExactMatch("exact", Normalization())], seed=5)
    assert outcome.pass_rate is not None
    assert outcome.pass_rate.estimate == pytest.approx(0.9)
    assert outcome.pass_rate.low < 0.9
    assert outcome.passed == 18
    assert outcome.status(min_pass_rate=0.95, min_mean=None) == "inconclusive"
    assert outcome.pass_rate.high == pytest.approx(0.972, abs=0.001)
    assert outcome.status(min_pass_rate=0.6, min_mean=None) == "pass"
    assert [item for item, _, _ in outcome.failures()] == ["18", "19"]


def test_score_items_needs_one_output_per_item() -> None:
    items = [EvalItem(id="a", messages=({"role": "user", "content": "q"},), expected="x")]
    with pytest.raises(ValueError, match="one output per item"):
        score_items(items, [], [ExactMatch("exact", Normalization())])


def test_repeats_average_within_item() -> None:
    import numpy as np

    from harness.evals import Score
    from harness.evals.aggregate import summarize_dataset

    scorer = ExactMatch("exact", Normalization())
    passing, failing = Score.of(True), Score.of(False, "wrong")
    # Item a passes both repeats, item b one of two: the item means are 1.0 and 0.5.
    scores = [[[passing, passing]], [[passing, failing]]]
    (outcome,) = summarize_dataset(["a", "b"], scores, [scorer], 0.95, 1000, np.random.default_rng(0))
    assert outcome.pass_rate is not None
    assert outcome.pass_rate.estimate == pytest.approx(0.75)
    assert outcome.pass_rate.samples == 2
    assert (outcome.passed, outcome.scored) == (3, 4)
    assert outcome.failures() == [("b", 1, "wrong")]


def test_wilson_interval_all_passing_not_collapsed() -> None:
    result = wilson_interval(3, 3, 0.95)
    assert result.estimate == 1.0
    assert result.high == 1.0
    assert result.low == pytest.approx(0.4385, abs=0.0001)
    assert threshold_status(result, 0.99) == "inconclusive"


def test_wilson_interval_all_failing_not_collapsed() -> None:
    result = wilson_interval(0, 3, 0.95)
    assert result.low == 0.0
    assert result.high == pytest.approx(0.5615, abs=0.0001)


def test_wilson_interval_known_values() -> None:
    # 27 of 30 at 95%: the Wilson score interval is [0.7438, 0.9654].
    result = wilson_interval(27, 30, 0.95)
    assert result.low == pytest.approx(0.7438, abs=0.0001)
    assert result.high == pytest.approx(0.9654, abs=0.0001)
    assert result.samples == 30


def test_score_items_all_passing_gate_inconclusive() -> None:
    items = [
        EvalItem(id=str(n), messages=({"role": "user", "content": "q"},), expected="yes") for n in range(3)
    ]
    (outcome,) = score_items(items, ["yes"] * 3, [ExactMatch("exact", Normalization())], seed=0)
    assert outcome.status(min_pass_rate=0.99, min_mean=None) == "inconclusive"
