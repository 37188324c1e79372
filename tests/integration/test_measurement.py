"""The load engine's numbers against a mock upstream whose delays are known."""

import itertools
import statistics
import time
from collections.abc import Callable

import pytest

from harness.load.engine import Target, run_load_blocking
from harness.metrics.records import ErrorClass
from harness.metrics.summary import summarize
from harness.scenario.model import LoadSpec

MockFactory = Callable[..., str]


def load_spec(**fields: object) -> LoadSpec:
    base: dict[str, object] = {
        "model": "open",
        "rate_per_s": 5,
        "duration": "4s",
        "requests": [{"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}],
    }
    return LoadSpec.model_validate({**base, **fields})


def test_ttft_p50_matches_mock_at_low_rate(mock_llm_factory: MockFactory) -> None:
    url = mock_llm_factory("--ttft-ms", "50", "--tokens-per-s", "0", "--output-tokens", "4")
    result = run_load_blocking(load_spec(), Target([url], "mock-llm"))
    measurements = summarize(result.records)
    assert measurements.successes == 20
    ttft_p50_ms = measurements.ttft.percentile(50) * 1000  # type: ignore[operator]
    assert ttft_p50_ms == pytest.approx(50, abs=5)


def test_open_model_keeps_schedule(mock_llm_factory: MockFactory) -> None:
    url = mock_llm_factory("--ttft-ms", "5", "--tokens-per-s", "0")
    result = run_load_blocking(load_spec(rate_per_s=20, duration="2s"), Target([url], "mock-llm"))
    starts = [record.intended_start for record in result.records]
    assert len(starts) == 40
    assert statistics.mean(b - a for a, b in itertools.pairwise(starts)) == pytest.approx(0.05)
    assert summarize(result.records).send_lag.percentile(50) < 0.005  # type: ignore[operator]


def test_request_cap_stops_open_model(mock_llm_factory: MockFactory) -> None:
    url = mock_llm_factory("--tokens-per-s", "0")
    result = run_load_blocking(
        load_spec(rate_per_s=50, duration="10s", max_requests=7), Target([url], "mock-llm")
    )
    assert len(result.records) == 7
    assert result.scheduled_s < 1


def test_closed_model_users_and_duration(mock_llm_factory: MockFactory) -> None:
    url = mock_llm_factory("--ttft-ms", "20", "--tokens-per-s", "0")
    spec = load_spec(model="closed", rate_per_s=None, users=3, duration="1s")
    result = run_load_blocking(spec, Target([url], "mock-llm"))
    measurements = summarize(result.records)
    # Three users, each about 20 ms per request for one second: roughly 150 requests.
    assert 60 <= measurements.requests <= 160
    assert measurements.errors == 0
    assert max(record.intended_start for record in result.records) < 1.0


def test_open_model_drops_what_it_cannot_send(mock_llm_factory: MockFactory) -> None:
    url = mock_llm_factory("--ttft-ms", "400", "--tokens-per-s", "0")
    spec = load_spec(rate_per_s=50, duration="1s", max_in_flight=2)
    started = time.monotonic()
    result = run_load_blocking(spec, Target([url], "mock-llm"))
    elapsed = time.monotonic() - started
    measurements = summarize(result.records)
    assert measurements.requests == 50
    assert measurements.successes == 6  # two slots, each freed every 0.4 s: at 0.4 s and 0.8 s
    assert measurements.error_classes == {"dropped": 44}
    assert measurements.errors == 44
    assert result.queued >= 1
    assert elapsed < 2.0


def test_non_stream_requests_have_no_ttft(mock_llm_factory: MockFactory) -> None:
    url = mock_llm_factory("--tokens-per-s", "0")
    result = run_load_blocking(load_spec(stream=False, duration="1s"), Target([url], "mock-llm"))
    measurements = summarize(result.records)
    assert measurements.successes == 5
    assert measurements.ttft.count == 0
    assert measurements.completion_tokens == 5 * 4


def test_server_errors_classified(mock_llm_factory: MockFactory) -> None:
    url = mock_llm_factory("--error-rate", "1")
    result = run_load_blocking(load_spec(duration="1s"), Target([url], "mock-llm"))
    measurements = summarize(result.records)
    assert measurements.errors == 5
    assert measurements.error_classes == {"http_status": 5}
    assert all(record.status == 500 for record in result.records)


def test_unreachable_target_is_connect_error() -> None:
    from harness.stack.process import free_loopback_port

    url = f"http://127.0.0.1:{free_loopback_port()}"
    result = run_load_blocking(load_spec(duration="1s"), Target([url], "mock-llm"))
    assert summarize(result.records).error_classes == {"connect": 5}


def test_slow_server_counts_timeout(mock_llm_factory: MockFactory) -> None:
    url = mock_llm_factory("--ttft-ms", "2000")
    result = run_load_blocking(load_spec(duration="1s", timeout="300ms"), Target([url], "mock-llm"))
    measurements = summarize(result.records)
    assert measurements.error_classes == {"timeout": 5}
    assert all(record.e2e_latency < 1.0 for record in result.records)  # type: ignore[operator]


def test_timeout_counts_from_intended_start(mock_llm_factory: MockFactory) -> None:
    url = mock_llm_factory("--ttft-ms", "300", "--tokens-per-s", "0", "--output-tokens", "2")
    spec = load_spec(rate_per_s=20, duration="1s", max_in_flight=1, timeout="400ms")
    records = run_load_blocking(spec, Target([url], "mock-llm")).records
    timeouts = [record for record in records if record.error_class is ErrorClass.TIMEOUT]
    assert timeouts
    # A request that waited for the single slot has only what is left of its 400 ms.
    latencies = [record.e2e_latency for record in records if record.e2e_latency is not None]
    assert max(latencies) < 0.4 + 0.05
    assert any(record.sent is None or record.sent - record.intended_start > 0.1 for record in timeouts)
