"""The load engine's numbers against a mock upstream whose delays are known."""

import asyncio
import itertools
import statistics
from collections.abc import Callable

import pytest

from harness.load.engine import Target, run_load
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
    result = asyncio.run(run_load(load_spec(), Target([url], "mock-llm")))
    measurements = summarize(result.records)
    assert measurements.successes == 20
    ttft_p50_ms = measurements.ttft.percentile(50) * 1000  # type: ignore[operator]
    assert ttft_p50_ms == pytest.approx(50, abs=5)


def test_open_model_keeps_schedule(mock_llm_factory: MockFactory) -> None:
    url = mock_llm_factory("--ttft-ms", "5", "--tokens-per-s", "0")
    result = asyncio.run(run_load(load_spec(rate_per_s=20, duration="2s"), Target([url], "mock-llm")))
    starts = [record.intended_start for record in result.records]
    assert len(starts) == 40
    assert statistics.mean(b - a for a, b in itertools.pairwise(starts)) == pytest.approx(0.05)
    assert summarize(result.records).send_lag.percentile(50) < 0.005  # type: ignore[operator]


def test_request_cap_stops_open_model(mock_llm_factory: MockFactory) -> None:
    url = mock_llm_factory("--tokens-per-s", "0")
    result = asyncio.run(
        run_load(load_spec(rate_per_s=50, duration="10s", max_requests=7), Target([url], "mock-llm"))
    )
    assert len(result.records) == 7
    assert result.scheduled_s < 1


def test_closed_model_users_and_duration(mock_llm_factory: MockFactory) -> None:
    url = mock_llm_factory("--ttft-ms", "20", "--tokens-per-s", "0")
    spec = load_spec(model="closed", rate_per_s=None, users=3, duration="1s")
    result = asyncio.run(run_load(spec, Target([url], "mock-llm")))
    measurements = summarize(result.records)
    # Three users, each about 20 ms per request for one second: roughly 150 requests.
    assert 60 <= measurements.requests <= 160
    assert measurements.errors == 0
    assert max(record.intended_start for record in result.records) < 1.0


def test_non_stream_requests_have_no_ttft(mock_llm_factory: MockFactory) -> None:
    url = mock_llm_factory("--tokens-per-s", "0")
    result = asyncio.run(run_load(load_spec(stream=False, duration="1s"), Target([url], "mock-llm")))
    measurements = summarize(result.records)
    assert measurements.successes == 5
    assert measurements.ttft.count == 0
    assert measurements.completion_tokens == 5 * 4


def test_server_errors_classified(mock_llm_factory: MockFactory) -> None:
    url = mock_llm_factory("--error-rate", "1")
    result = asyncio.run(run_load(load_spec(duration="1s"), Target([url], "mock-llm")))
    measurements = summarize(result.records)
    assert measurements.errors == 5
    assert measurements.error_classes == {"http_status": 5}
    assert all(record.status == 500 for record in result.records)


def test_unreachable_target_is_connect_error() -> None:
    from harness.stack.process import free_loopback_port

    url = f"http://127.0.0.1:{free_loopback_port()}"
    result = asyncio.run(run_load(load_spec(duration="1s"), Target([url], "mock-llm")))
    assert summarize(result.records).error_classes == {"connect": 5}


def test_slow_server_counts_timeout(mock_llm_factory: MockFactory) -> None:
    url = mock_llm_factory("--ttft-ms", "2000")
    result = asyncio.run(run_load(load_spec(duration="1s", timeout="300ms"), Target([url], "mock-llm")))
    measurements = summarize(result.records)
    assert measurements.error_classes == {"timeout": 5}
    assert all(record.e2e_latency < 1.0 for record in result.records)  # type: ignore[operator]
