"""Error budgets, burn rates and every comparator of the objectives."""

import pytest

from harness.metrics.records import ErrorClass, RequestRecord
from harness.metrics.summary import summarize
from harness.scenario.slo import OpenSLOSpec, SLOSpec
from harness.slo.budget import ErrorBudget, objective_share
from harness.slo.evaluate import SLOContext, Status, evaluate_slo


def record(index: int, e2e: float = 0.1, status: int = 200, error: ErrorClass | None = None) -> RequestRecord:
    return RequestRecord(
        index=index,
        kind=0,
        replica=0,
        stream=True,
        intended_start=float(index),
        sent=float(index),
        first_token=index + e2e / 2,
        end=index + e2e,
        status=status,
        error_class=error,
        completion_tokens=10,
    )


def failed(index: int) -> RequestRecord:
    return record(index, status=500, error=ErrorClass.HTTP_STATUS)


def limited(index: int) -> RequestRecord:
    return record(index, status=429, error=ErrorClass.RATE_LIMITED)


def slo(**fields: object) -> SLOSpec:
    return SLOSpec.model_validate(fields)


def long_slo(**fields: object) -> OpenSLOSpec:
    return OpenSLOSpec.model_validate(fields)


def test_burn_rate_is_bad_ratio_over_allowance() -> None:
    budget = ErrorBudget(objective=0.99, bad=3, total=100)
    assert budget.bad_ratio == pytest.approx(0.03)
    assert budget.burn_rate == pytest.approx(3.0)
    assert budget.remaining == pytest.approx(-2.0)
    assert budget.allowed_bad == pytest.approx(1.0)
    assert budget.exhausted


def test_burn_rate_below_one_leaves_budget() -> None:
    budget = ErrorBudget(objective=0.9, bad=5, total=100)
    assert budget.burn_rate == pytest.approx(0.5)
    assert budget.remaining == pytest.approx(0.5)
    assert not budget.exhausted


def test_budget_spent_exactly_is_not_exhausted() -> None:
    budget = ErrorBudget(objective=0.95, bad=5, total=100)
    assert budget.burn_rate == pytest.approx(1.0)
    assert not budget.exhausted


def test_burn_rate_without_requests_is_none() -> None:
    assert ErrorBudget(objective=0.99, bad=0, total=0).burn_rate is None


def test_burn_rate_at_full_objective_is_none() -> None:
    budget = ErrorBudget(objective=1.0, bad=1, total=10)
    assert budget.burn_rate is None
    assert budget.exhausted


@pytest.mark.parametrize(
    ("metric", "comparator", "limit", "percentile", "share"),
    [
        ("error_rate", "max", 0.01, None, 0.99),
        ("availability", "min", 0.995, None, 0.995),
        ("rate_limited", "max", 0.2, None, 0.8),
        ("cache_hit_ratio", "min", 0.9, None, 0.9),
        ("ttft", "max", 0.3, 95.0, 0.95),
        ("output_tokens_per_s", "min", 20.0, 5.0, 0.95),
        ("throughput", "min", 10.0, None, None),
        ("recovery_time", "max", 5.0, None, None),
        ("cost_total", "max", 1.0, None, None),
    ],
)
def test_objective_share_by_metric(
    metric: str, comparator: str, limit: float, percentile: float | None, share: float | None
) -> None:
    assert objective_share(metric, comparator, limit, percentile) == share  # type: ignore[arg-type]


def test_error_rate_verdict_carries_burn_rate() -> None:
    measurements = summarize([*(record(i) for i in range(98)), failed(98), failed(99)])
    verdict = evaluate_slo(slo(metric="error_rate", max="1%"), measurements, "block", None)
    assert verdict.status is Status.FAIL
    assert verdict.objective == pytest.approx(0.99)
    assert verdict.burn_rate == pytest.approx(2.0)
    assert verdict.budget is not None
    assert verdict.budget.bad == 2


def test_latency_burn_rate_matches_percentile_verdict() -> None:
    # Limits sit just above 100 ms: the histogram keeps 3 significant digits, so 100 ms reads as 100.06 ms.
    records = [record(i, e2e=0.1) for i in range(95)] + [record(95 + i, e2e=0.5) for i in range(5)]
    measurements = summarize(records)
    at_limit = evaluate_slo(
        slo(metric="e2e_latency", percentile=95, max="101ms"), measurements, "block", None
    )
    assert at_limit.status is Status.PASS
    assert at_limit.burn_rate == pytest.approx(1.0)
    stricter = evaluate_slo(
        slo(metric="e2e_latency", percentile=96, max="101ms"), measurements, "block", None
    )
    assert stricter.status is Status.FAIL
    assert stricter.burn_rate is not None
    assert stricter.burn_rate > 1


# Every comparator on every kind of metric: at the limit passes, beyond it fails.
LATENCY = [record(i, e2e=0.2) for i in range(10)]


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"metric": "e2e_latency", "percentile": 50, "max": "200ms"}, Status.PASS),
        ({"metric": "e2e_latency", "percentile": 50, "max": "199ms"}, Status.FAIL),
        ({"metric": "e2e_latency", "percentile": 50, "min": "200ms"}, Status.PASS),
        ({"metric": "e2e_latency", "percentile": 50, "min": "201ms"}, Status.FAIL),
        ({"metric": "error_rate", "max": "0%"}, Status.PASS),
        ({"metric": "availability", "min": "100%"}, Status.PASS),
        ({"metric": "throughput", "min": "1/s"}, Status.PASS),
        ({"metric": "throughput", "max": "0.5/s"}, Status.FAIL),
        ({"metric": "output_tokens_per_s", "percentile": 50, "min": "40/s"}, Status.PASS),
        ({"metric": "output_tokens_per_s", "percentile": 50, "max": "40/s"}, Status.FAIL),
    ],
)
def test_comparator_on_metric_kinds(fields: dict[str, object], status: Status) -> None:
    verdict = evaluate_slo(slo(**fields), summarize(LATENCY), "block", None)
    assert verdict.status is status


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        (
            {"thresholdMetric": {"metric": "e2e_latency", "op": "lte", "value": "200ms"}, "target": "90%"},
            Status.PASS,
        ),
        (
            {"thresholdMetric": {"metric": "e2e_latency", "op": "lte", "value": "150ms"}, "target": "90%"},
            Status.FAIL,
        ),
        (
            {"thresholdMetric": {"metric": "e2e_latency", "op": "gte", "value": "200ms"}, "target": "90%"},
            Status.PASS,
        ),
        (
            {"thresholdMetric": {"metric": "e2e_latency", "op": "gte", "value": "250ms"}, "target": "90%"},
            Status.FAIL,
        ),
        ({"ratioMetric": {"good": "successes", "total": "judged"}, "target": "100%"}, Status.PASS),
        ({"ratioMetric": {"bad": "errors", "total": "judged"}, "target": "99%"}, Status.PASS),
    ],
)
def test_long_form_comparators(fields: dict[str, object], status: Status) -> None:
    verdict = evaluate_slo(long_slo(**fields), summarize(LATENCY), "block", None)
    assert verdict.status is status


def test_long_ratio_form_maps_to_metric() -> None:
    spec = long_slo(ratioMetric={"bad": "errors", "total": "judged"}, target="99.5%")
    assert spec.metric == "error_rate"
    assert spec.comparator == "max"
    assert spec.limit == pytest.approx(0.005)


def test_long_threshold_form_maps_to_percentile() -> None:
    spec = long_slo(thresholdMetric={"metric": "ttft", "op": "lte", "value": "300ms"}, target="95%")
    assert spec.percentile == pytest.approx(95.0)
    assert spec.limit == pytest.approx(0.3)
    gte = long_slo(thresholdMetric={"metric": "output_tokens_per_s", "op": "gte", "value": 20}, target="95%")
    assert gte.percentile == pytest.approx(5.0)
    assert gte.comparator == "min"


def test_long_threshold_form_default_name() -> None:
    spec = long_slo(thresholdMetric={"metric": "ttft", "op": "lte", "value": "300ms"}, target="95%")
    verdict = evaluate_slo(spec, summarize(LATENCY), "block", None)
    assert verdict.name == "ttft <= 300ms for 95% of requests"


def test_rate_limited_budget_counts_all_requests() -> None:
    measurements = summarize([record(0), limited(1), limited(2), record(3)])
    verdict = evaluate_slo(slo(metric="rate_limited", max="25%"), measurements, "block", None)
    assert verdict.status is Status.FAIL
    assert verdict.budget is not None
    assert (verdict.budget.bad, verdict.budget.total) == (2, 4)
    assert verdict.burn_rate == pytest.approx(2.0)


def test_expected_429s_are_the_good_ones() -> None:
    measurements = summarize([limited(0), limited(1), limited(2), record(3)])
    verdict = evaluate_slo(slo(metric="rate_limited", min="70%"), measurements, "block", None)
    assert verdict.status is Status.PASS
    assert verdict.budget is not None
    assert (verdict.budget.bad, verdict.budget.total) == (1, 4)
    assert verdict.burn_rate == pytest.approx(0.25 / 0.3)
    assert not verdict.budget.exhausted


def test_availability_budget_counts_errors() -> None:
    measurements = summarize([record(0), failed(1), record(2), record(3)])
    verdict = evaluate_slo(slo(metric="availability", min="50%"), measurements, "block", None)
    assert verdict.budget is not None
    assert (verdict.budget.bad, verdict.budget.total) == (1, 4)
    assert verdict.burn_rate == pytest.approx(0.5)


def test_availability_excludes_rate_limited() -> None:
    measurements = summarize([record(0), limited(1), failed(2), record(3)])
    verdict = evaluate_slo(slo(metric="availability", min="66%"), measurements, "block", None)
    assert verdict.observed == pytest.approx(2 / 3)
    assert verdict.samples == 3
    assert verdict.status is Status.PASS


def test_cost_without_context_is_no_data() -> None:
    verdict = evaluate_slo(
        slo(metric="cost_total", max=1), summarize(LATENCY), "block", None, context=SLOContext()
    )
    assert verdict.status is Status.NO_DATA
    assert verdict.note == "the run's cost was not computed"
