import pytest

from harness.metrics.records import ErrorClass, RequestRecord
from harness.metrics.summary import summarize
from harness.scenario.model import SLOSpec
from harness.slo.evaluate import Status, default_name, evaluate_slo, format_metric_value


def record(index: int, e2e: float, ttft: float | None = None, status: int = 200, error=None) -> RequestRecord:
    return RequestRecord(
        index=index,
        kind=0,
        replica=0,
        stream=ttft is not None,
        intended_start=float(index),
        sent=float(index) + 0.001,
        first_token=None if ttft is None else index + ttft,
        end=index + e2e,
        status=status,
        error_class=error,
    )


def slo(**fields: object) -> SLOSpec:
    return SLOSpec.model_validate(fields)


def test_latency_max_passes_at_limit() -> None:
    measurements = summarize([record(i, 0.2) for i in range(10)])
    verdict = evaluate_slo(slo(metric="e2e_latency", percentile=95, max="200ms"), measurements, "block", 3)
    assert verdict.status is Status.PASS
    assert verdict.observed == pytest.approx(200.0, rel=1e-3)
    assert verdict.limit == pytest.approx(200.0)
    assert verdict.samples == 10
    assert verdict.line == 3


def test_latency_max_fails_above_limit() -> None:
    measurements = summarize([record(i, 0.3) for i in range(10)])
    verdict = evaluate_slo(slo(metric="e2e_latency", percentile=50, max="200ms"), measurements, "block", None)
    assert verdict.status is Status.FAIL
    assert verdict.blocks


def test_ttft_uses_stream_samples_only() -> None:
    records = [record(0, 0.5, ttft=0.1), record(1, 0.5, ttft=0.3), record(2, 0.5)]
    verdict = evaluate_slo(slo(metric="ttft", percentile=100, max="1s"), summarize(records), "block", None)
    assert verdict.samples == 2
    assert verdict.observed == pytest.approx(300.0)


def test_error_rate_excludes_rate_limited() -> None:
    records = [
        record(0, 0.1),
        record(1, 0.1, status=500, error=ErrorClass.HTTP_STATUS),
        record(2, 0.1, status=429, error=ErrorClass.RATE_LIMITED),
        record(3, 0.1),
    ]
    measurements = summarize(records)
    verdict = evaluate_slo(slo(metric="error_rate", max="34%"), measurements, "block", None)
    assert measurements.rate_limited == 1
    assert verdict.observed == pytest.approx(1 / 3)
    assert verdict.status is Status.PASS


def test_error_rate_all_rate_limited_has_no_data() -> None:
    records = [record(i, 0.1, status=429, error=ErrorClass.RATE_LIMITED) for i in range(5)]
    measurements = summarize(records)
    error_rate = evaluate_slo(slo(metric="error_rate", max="0%"), measurements, "block", None)
    rate_limited = evaluate_slo(slo(metric="rate_limited", max="10%"), measurements, "block", None)
    assert error_rate.status is Status.NO_DATA
    assert rate_limited.observed == pytest.approx(1.0)
    assert rate_limited.status is Status.FAIL


def test_error_rate_not_diluted_by_rate_limited() -> None:
    records = [record(0, 0.1), record(1, 0.1, status=500, error=ErrorClass.HTTP_STATUS)]
    records += [record(i, 0.1, status=429, error=ErrorClass.RATE_LIMITED) for i in range(2, 12)]
    verdict = evaluate_slo(slo(metric="error_rate", max="50%"), summarize(records), "block", None)
    assert verdict.observed == pytest.approx(0.5)
    assert verdict.samples == 2


def test_error_rate_equal_to_limit_passes() -> None:
    records = [record(i, 0.1) for i in range(993)]
    records += [record(i, 0.1, status=500, error=ErrorClass.HTTP_STATUS) for i in range(993, 1000)]
    verdict = evaluate_slo(slo(metric="error_rate", max="0.7%"), summarize(records), "block", None)
    assert verdict.status is Status.PASS


def test_failed_requests_excluded_from_latency() -> None:
    records = [record(0, 0.1), record(1, 9.0, status=500, error=ErrorClass.HTTP_STATUS)]
    verdict = evaluate_slo(
        slo(metric="e2e_latency", percentile=100, max="1s"), summarize(records), "block", None
    )
    assert verdict.samples == 1
    assert verdict.status is Status.PASS


def test_throughput_min() -> None:
    records = [record(i, 0.5) for i in range(10)]  # responses end at 0.5, 1.5, ... 9.5 s
    verdict = evaluate_slo(slo(metric="throughput", min="1/s"), summarize(records), "block", None)
    assert verdict.observed == pytest.approx(1.0)
    assert verdict.status is Status.PASS
    assert verdict.comparator == "min"


def test_throughput_ignores_failed_and_slow_tail() -> None:
    records = [record(i, 0.1) for i in range(5)]
    records.append(record(5, 30.0, status=500, error=ErrorClass.HTTP_STATUS))
    measurements = summarize(records)
    assert measurements.throughput_per_s == pytest.approx(1.0)
    assert measurements.window_s == pytest.approx(35.0)


def test_throughput_reflects_backlog() -> None:
    # Requests arrive every 0.1 s but complete only every 0.5 s: the server is falling behind.
    records = [record(i, 0.0) for i in range(10)]
    for position, item in enumerate(records):
        item.intended_start = position * 0.1
        item.end = 0.5 * (position + 1)
    assert summarize(records).throughput_per_s == pytest.approx(2.0)


def test_throughput_needs_two_responses() -> None:
    verdict = evaluate_slo(slo(metric="throughput", min="1/s"), summarize([record(0, 0.1)]), "block", None)
    assert verdict.status is Status.NO_DATA


def test_error_examples_keep_first_message() -> None:
    first = record(0, 0.1, status=404, error=ErrorClass.HTTP_STATUS)
    first.error = "HTTP 404: The model 'gpt-4o' does not exist."
    second = record(1, 0.1, status=500, error=ErrorClass.HTTP_STATUS)
    second.error = "HTTP 500: boom"
    assert summarize([first, second]).error_examples == {"http_status": first.error}


def test_no_samples_fails_the_gate() -> None:
    verdict = evaluate_slo(
        slo(metric="ttft", percentile=95, max="1s"), summarize([record(0, 0.1)]), "block", None
    )
    assert verdict.status is Status.NO_DATA
    assert verdict.blocks


def test_warn_gate_does_not_block() -> None:
    measurements = summarize([record(0, 5.0)])
    verdict = evaluate_slo(slo(metric="e2e_latency", percentile=50, max="1s"), measurements, "warn", None)
    assert verdict.status is Status.FAIL
    assert not verdict.blocks


def test_slo_gate_overrides_scenario_gate() -> None:
    measurements = summarize([record(0, 5.0)])
    spec = slo(metric="e2e_latency", percentile=50, max="1s", gate="warn")
    assert not evaluate_slo(spec, measurements, "block", None).blocks


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"metric": "ttft", "percentile": "p99.9", "max": "1.5s"}, "ttft p99.9 <= 1.5s"),
        ({"metric": "error_rate", "max": "1%"}, "error_rate <= 1%"),
        ({"metric": "throughput", "min": 20}, "throughput >= 20/s"),
    ],
)
def test_default_name_describes_objective(fields: dict[str, object], name: str) -> None:
    assert default_name(slo(**fields)) == name


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        ("ttft", 56.44, "56.4ms"),
        ("ttft", 1000.0, "1s"),
        ("e2e_latency", 12345.0, "12.35s"),
        ("ttft", None, "no data"),
    ],
)
def test_format_metric_value_latency(metric: str, value: float | None, text: str) -> None:
    assert format_metric_value(metric, value) == text
