"""Open-model schedules, the sweep search, and the load section's new keys."""

import random
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from harness.load.schedule import arrival_times
from harness.load.sweep import find_capacity
from harness.metrics.records import RequestRecord
from harness.metrics.series import SeriesBuilder
from harness.scenario.errors import ScenarioError
from harness.scenario.load import LoadSpec, SweepSpec
from harness.scenario.loader import load_scenario
from harness.scenario.model import Scenario

REQUESTS = [{"messages": [{"role": "user", "content": "hi"}]}]


def spec(**fields: Any) -> LoadSpec:
    return LoadSpec.model_validate({"model": "open", "requests": REQUESTS, **fields})


def times(load: LoadSpec, seed: int = 0) -> list[float]:
    return list(arrival_times(load, random.Random(seed)))


class TestArrivals:
    def test_constant_rate_evenly_spaced(self) -> None:
        due = times(spec(rate_per_s=20, duration="2s"))
        assert len(due) == 40
        assert due[:3] == pytest.approx([0.0, 0.05, 0.1])
        assert due[-1] == pytest.approx(1.95)

    def test_request_cap_stops_schedule(self) -> None:
        assert len(times(spec(rate_per_s=100, duration="10s", max_requests=7))) == 7

    def test_linear_ramp_counts_integral(self) -> None:
        due = times(spec(stages=[{"duration": "10s", "rate_per_s": 20}]))
        assert len(due) == 100  # the integral of 0 -> 20/s over 10 s
        first_half = sum(1 for t in due if t < 5)
        assert first_half == 25

    def test_step_holds_rate(self) -> None:
        stages = [
            {"duration": "2s", "rate_per_s": 5, "ramp": "step"},
            {"duration": "1s", "rate_per_s": 30, "ramp": "step"},
        ]
        due = times(spec(stages=stages))
        assert sum(1 for t in due if t < 2) == 10
        assert sum(1 for t in due if t >= 2) == 30

    def test_zero_length_stage_jumps(self) -> None:
        stages = [{"duration": "0s", "rate_per_s": 10}, {"duration": "3s", "rate_per_s": 10}]
        due = times(spec(stages=stages))
        assert len(due) == 30
        assert due[1] == pytest.approx(0.1)

    def test_ramp_from_start_rate(self) -> None:
        due = times(spec(start_rate_per_s=10, stages=[{"duration": "2s", "rate_per_s": 30}]))
        assert len(due) == 40

    def test_poisson_mean_rate_and_seed(self) -> None:
        load = spec(arrival="poisson", rate_per_s=50, duration="200s")
        due = times(load)
        assert 9_500 <= len(due) <= 10_500
        assert times(load) == due
        assert times(load, seed=1) != due
        assert due == sorted(due)
        assert due[0] > 0


class TestSweepSearch:
    def test_finds_capacity_within_precision(self) -> None:
        sweep = SweepSpec.model_validate({"start_rate_per_s": 10, "max_rate_per_s": 1000, "precision": "5%"})
        search = find_capacity(sweep, lambda rate: rate <= 137)
        assert search.passing is not None
        assert 137 / 1.05 <= search.passing <= 137
        assert search.failing is not None
        assert search.failing <= search.passing * 1.05

    def test_start_rate_failing_halves(self) -> None:
        sweep = SweepSpec.model_validate({"start_rate_per_s": 100, "max_rate_per_s": 200, "max_trials": 20})
        search = find_capacity(sweep, lambda rate: rate <= 30)
        assert search.passing is not None
        assert 30 / 1.05 <= search.passing <= 30

    def test_max_rate_passing_ends_search(self) -> None:
        sweep = SweepSpec.model_validate({"start_rate_per_s": 10, "max_rate_per_s": 50})
        search = find_capacity(sweep, lambda rate: True)
        assert search.passing == 50
        assert [rate for rate, _ in search.tried] == [10, 20, 40, 50]

    def test_trial_cap_bounds_search(self) -> None:
        sweep = SweepSpec.model_validate({"start_rate_per_s": 1, "max_rate_per_s": 1000, "max_trials": 3})
        search = find_capacity(sweep, lambda rate: False)
        assert len(search.tried) == 3
        assert search.passing is None

    def test_max_below_start_rejected(self) -> None:
        with pytest.raises(ValidationError, match="max_rate_per_s"):
            SweepSpec.model_validate({"start_rate_per_s": 10, "max_rate_per_s": 5})


class TestLoadSpec:
    def test_stages_sum_to_schedule(self) -> None:
        load = spec(stages=[{"duration": "10s", "rate_per_s": 5}, {"duration": "20s", "rate_per_s": 5}])
        assert load.schedule_s == 30

    def test_scaled_scales_every_phase(self) -> None:
        load = spec(
            stages=[{"duration": "10s", "rate_per_s": 5}, {"duration": "20s", "rate_per_s": 5}], warmup="5s"
        )
        scaled = load.scaled(0.1)
        assert [stage.duration for stage in scaled.stages or []] == pytest.approx([1.0, 2.0])
        assert scaled.warmup == pytest.approx(0.5)
        assert spec(rate_per_s=1, duration="60s").scaled(0.5).duration == 30

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"duration": "1s"}, "the open model needs rate_per_s"),
            ({"rate_per_s": 1, "stages": [{"duration": "1s", "rate_per_s": 1}]}, "give only one of"),
            ({"rate_per_s": 1, "duration": "2s", "warmup": "2s"}, "must be shorter than the schedule"),
            ({"stages": [{"duration": "1s", "rate_per_s": 1}], "duration": "1s"}, "remove it"),
            ({"stages": [{"duration": "0s", "rate_per_s": 1}]}, "last 0s in total"),
            ({"rate_per_s": 1, "duration": "1s", "start_rate_per_s": 2}, "applies to stages only"),
            ({"rate_per_s": 1, "duration": "1s", "workers": 2}, "applies to engine: locust"),
            (
                {"model": "closed", "users": 1, "duration": "1s", "arrival": "poisson"},
                "applies to the open model",
            ),
            ({"rate_per_s": 1, "duration": "1s", "max_send_lag_p99": "0s"}, "longer than 0s"),
        ],
    )
    def test_invalid_combinations_rejected(self, fields: dict[str, Any], message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            spec(**fields)

    def test_unknown_stage_key_names_field(self, tmp_path: Path) -> None:
        path = tmp_path / "s.yaml"
        text = """\
version: 1
name: s
load:
  model: open
  stages:
    - {duration: 1s, rate_per_s: 2, rampp: step}
  requests: [{messages: [{role: user, content: hi}]}]
slo:
  - {metric: error_rate, max: 1%}
"""
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ScenarioError) as caught:
            load_scenario(path)
        (problem,) = caught.value.problems
        assert problem.field == "load.stages[0].rampp"
        assert problem.line == 6
        assert "did you mean 'ramp'" in problem.message


def scenario(load: dict[str, Any], slo: list[dict[str, Any]]) -> Scenario:
    return Scenario.model_validate(
        {"version": 1, "name": "s", "load": {"requests": REQUESTS, **load}, "slo": slo}
    )


class TestConsistency:
    def test_capacity_needs_sweep(self) -> None:
        problems = scenario(
            {"model": "open", "rate_per_s": 1, "duration": "1s"}, [{"metric": "capacity", "min": 5}]
        )
        assert "needs a sweep" in problems.consistency_problems()[0][1]

    def test_sweep_needs_other_objective(self) -> None:
        sweep = {"start_rate_per_s": 1, "max_rate_per_s": 8}
        problems = scenario(
            {"model": "open", "sweep": sweep, "duration": "1s"}, [{"metric": "capacity", "min": 5}]
        )
        assert "other than capacity" in problems.consistency_problems()[0][1]

    @pytest.mark.parametrize("metric", ["itl", "tpot", "ttft"])
    def test_stream_metrics_need_stream(self, metric: str) -> None:
        load = {"model": "open", "rate_per_s": 1, "duration": "1s", "stream": False}
        problems = scenario(load, [{"metric": metric, "percentile": 50, "max": "1s"}]).consistency_problems()
        assert "needs streaming requests" in problems[0][1]


def finished(start: float, sent: float, end: float, ok: bool = True) -> RequestRecord:
    return RequestRecord(
        index=0, kind=0, replica=0, stream=False, intended_start=start, sent=sent, end=end,
        status=200 if ok else 500, completion_tokens=4,
    )  # fmt: skip


class TestSeries:
    def test_counts_by_second_of_end(self) -> None:
        series = SeriesBuilder()
        for start in (0.1, 0.3, 1.2):
            series.add(finished(start, start, start + 0.5))
        rows = series.rows()
        assert [row["second"] for row in rows] == [0, 1]
        assert [row["started"] for row in rows] == [2, 1]
        assert [row["completed"] for row in rows] == [2, 1]
        assert rows[1]["e2e_p50_ms"] == pytest.approx(500, rel=1e-3)

    def test_in_flight_is_time_weighted(self) -> None:
        series = SeriesBuilder()
        series.add(finished(0.0, 0.0, 1.5))
        series.add(finished(0.5, 0.5, 1.0))
        rows = series.rows()
        assert rows[0]["in_flight"] == pytest.approx(1.5)
        assert rows[1]["in_flight"] == pytest.approx(0.5)

    def test_gaps_filled_and_warmup_marked(self) -> None:
        series = SeriesBuilder(warmup_s=1.0)
        series.add(finished(0.0, 0.0, 0.1))
        series.add(finished(3.0, 3.0, 3.1, ok=False))
        rows = series.rows()
        assert [row["second"] for row in rows] == [0, 1, 2, 3]
        assert [row["warmup"] for row in rows] == [1, 0, 0, 0]
        assert rows[3]["errors"] == 1
        assert rows[2]["e2e_p50_ms"] is None
