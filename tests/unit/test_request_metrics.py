"""Every metric definition on hand-built request records, including the awkward streams."""

import pytest

from harness.load.responses import StreamReader
from harness.metrics.histogram import LatencyHistogram
from harness.metrics.records import ErrorClass, RequestRecord, TokenSource
from harness.metrics.summary import RequestObjective, summarize


def stream_record(
    chunk_times: list[float],
    tokens: int | None,
    *,
    start: float = 0.0,
    end: float | None = None,
    source: TokenSource = TokenSource.USAGE,
) -> RequestRecord:
    return RequestRecord(
        index=0,
        kind=0,
        replica=0,
        stream=True,
        intended_start=start,
        sent=start,
        first_token=chunk_times[0] if chunk_times else None,
        end=end if end is not None else (chunk_times[-1] if chunk_times else start),
        status=200,
        completion_tokens=tokens,
        token_source=source if tokens is not None else None,
        content_chunks=len(chunk_times),
        chunk_times=list(chunk_times),
    )


def feed_events(record: RequestRecord, events: list[tuple[float, str]]) -> StreamReader:
    reader = StreamReader(record)
    for arrived, event in events:
        if not reader.feed(f"data: {event}\n\n".encode(), arrived):
            break
    reader.finish()
    return reader


CONTENT = '{"choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}'
REASONING = '{"choices":[{"index":0,"delta":{"reasoning_content":"thinking"},"finish_reason":null}]}'
FINISH = '{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
USAGE = '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":%d}}'


class TestPerRequestDefinitions:
    def test_e2e_and_ttft_from_intended_start(self) -> None:
        record = stream_record([1.25, 1.5], 2, start=1.0, end=1.75)
        record.sent = 1.1
        assert record.e2e_latency == pytest.approx(0.75)
        assert record.ttft == pytest.approx(0.25)
        assert record.send_lag == pytest.approx(0.1)

    def test_tpot_excludes_first_token(self) -> None:
        record = stream_record([0.1, 0.2, 0.3, 0.4, 0.5], 5, end=0.5)
        assert record.tpot == pytest.approx((0.5 - 0.1) / 4)

    def test_tpot_undefined_for_one_token(self) -> None:
        assert stream_record([0.1], 1).tpot is None

    def test_tpot_undefined_without_ttft(self) -> None:
        record = stream_record([], 4, end=0.5)
        assert record.tpot is None

    def test_output_tokens_per_s_over_e2e(self) -> None:
        record = stream_record([0.1, 0.5], 8, end=2.0)
        assert record.output_tokens_per_s == pytest.approx(4.0)

    def test_output_tokens_per_s_needs_tokens(self) -> None:
        assert stream_record([], None, end=1.0).output_tokens_per_s is None


class TestInterTokenLatency:
    def test_single_token_chunks_one_sample_per_gap(self) -> None:
        record = stream_record([0.1, 0.12, 0.15, 0.25], 4)
        samples = record.itl_samples()
        assert [count for _, count in samples] == [1, 1, 1]
        assert [value for value, _ in samples] == pytest.approx([0.02, 0.03, 0.10])

    def test_multi_token_chunk_spreads_gap(self) -> None:
        # Four chunks of four tokens, 40 ms apart: every token after the first chunk is 10 ms.
        record = stream_record([0.1, 0.14, 0.18, 0.22], 16)
        samples = record.itl_samples()
        assert samples == [(pytest.approx(0.01), 4)] * 3
        assert sum(count for _, count in samples) == 16 - 4

    def test_samples_add_up_to_content_span(self) -> None:
        record = stream_record([0.1, 0.13, 0.2, 0.41], 10)
        total = sum(value * count for value, count in record.itl_samples())
        assert total == pytest.approx(0.41 - 0.1)

    def test_uneven_split_gives_earlier_chunks_remainder(self) -> None:
        record = stream_record([0.0, 0.1, 0.2], 7)
        assert record.chunk_token_counts() == [3, 2, 2]

    def test_fewer_tokens_than_chunks_merges_gaps(self) -> None:
        record = stream_record([0.0, 0.1, 0.2, 0.3], 2)
        assert record.chunk_token_counts() == [1, 1, 0, 0]
        assert record.itl_samples() == [(pytest.approx(0.1), 1)]

    def test_counted_tokens_are_one_per_chunk(self) -> None:
        record = stream_record([0.0, 0.1, 0.3], 3, source=TokenSource.COUNTED)
        assert [count for _, count in record.itl_samples()] == [1, 1]

    def test_itl_histogram_counts_tokens(self) -> None:
        measurements = summarize([stream_record([0.1, 0.14, 0.18], 12)])
        assert measurements.itl.count == 8
        assert measurements.itl.percentile(50) == pytest.approx(0.01, rel=1e-3)

    def test_itl_max_is_largest_per_token_gap(self) -> None:
        record = stream_record([0.0, 0.1, 0.5], 3)
        assert record.itl_max == pytest.approx(0.4)


class TestStreamReader:
    def test_multi_token_chunks_with_usage(self) -> None:
        record = stream_record([], None)
        events = [(0.2, CONTENT % "a b c d"), (0.24, CONTENT % " e f g h"), (0.25, FINISH), (0.25, USAGE % 8)]
        feed_events(record, [*events, (0.26, "[DONE]")])
        assert record.ok
        assert record.first_token == 0.2
        assert record.chunk_times == [0.2, 0.24]
        assert record.completion_tokens == 8
        assert record.token_source is TokenSource.USAGE
        assert record.itl_samples() == [(pytest.approx(0.01), 4)]

    def test_reasoning_delta_stamps_ttft(self) -> None:
        record = stream_record([], None)
        events = [(0.3, REASONING), (0.5, CONTENT % "answer"), (0.6, FINISH), (0.6, "[DONE]")]
        feed_events(record, events)
        assert record.first_token == 0.3
        assert record.content_chunks == 2
        assert record.token_source is TokenSource.COUNTED

    def test_role_only_delta_is_not_first_token(self) -> None:
        record = stream_record([], None)
        role = '{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}'
        feed_events(record, [(0.1, role), (0.4, CONTENT % "x"), (0.5, FINISH), (0.5, "[DONE]")])
        assert record.first_token == 0.4

    def test_sse_error_event_is_error(self) -> None:
        record = stream_record([], None)
        events = [(0.1, CONTENT % "x"), (0.2, '{"error":{"message":"upstream broke"}}'), (0.3, "[DONE]")]
        feed_events(record, events)
        assert record.error_class is ErrorClass.SSE_ERROR
        assert record.is_error
        assert "upstream broke" in (record.error or "")

    def test_truncated_stream_without_done(self) -> None:
        record = stream_record([], None)
        feed_events(record, [(0.1, CONTENT % "x"), (0.2, FINISH)])
        assert record.error_class is ErrorClass.TRUNCATED

    def test_stream_without_finish_reason_truncated(self) -> None:
        record = stream_record([], None)
        feed_events(record, [(0.1, CONTENT % "x"), (0.2, "[DONE]")])
        assert record.error_class is ErrorClass.TRUNCATED

    def test_event_split_across_reads_stamped_when_complete(self) -> None:
        record = stream_record([], None)
        reader = StreamReader(record)
        payload = f"data: {CONTENT % 'x'}\n\n".encode()
        reader.feed(payload[:10], 0.1)
        assert record.first_token is None
        reader.feed(payload[10:], 0.3)
        assert record.first_token == 0.3

    def test_failed_requests_leave_latency_histograms(self) -> None:
        good = stream_record([0.1, 0.2], 2, end=0.2)
        broken = stream_record([0.1], 1, end=5.0)
        broken.error_class = ErrorClass.SSE_ERROR
        truncated = stream_record([0.1], 1, end=7.0)
        truncated.error_class = ErrorClass.TRUNCATED
        measurements = summarize([good, broken, truncated])
        assert measurements.e2e_latency.count == 1
        assert measurements.ttft.count == 1
        assert measurements.errors == 2
        assert measurements.error_rate == pytest.approx(2 / 3)


class TestRunMetrics:
    def test_goodput_counts_requests_meeting_objectives(self) -> None:
        records = [stream_record([0.05 + i, 0.1 + i], 2, start=i, end=i + 0.2) for i in range(4)]
        records[3].first_token = 3.5  # TTFT 500 ms
        objectives = [RequestObjective("ttft", "max", 0.3)]
        measurements = summarize(records, objectives)
        assert measurements.good == 3
        assert measurements.throughput_per_s == pytest.approx(1.0)
        assert measurements.goodput_per_s == pytest.approx(0.75)

    def test_goodput_equals_throughput_without_objectives(self) -> None:
        records = [stream_record([i + 0.1], 1, start=i, end=i + 0.2) for i in range(3)]
        measurements = summarize(records)
        assert measurements.goodput_per_s == measurements.throughput_per_s

    def test_output_throughput_is_tokens_per_second(self) -> None:
        records = [stream_record([i + 0.1, i + 0.2], 10, start=i, end=i + 0.5) for i in range(5)]
        assert summarize(records).output_throughput_per_s == pytest.approx(10.0)

    def test_warmup_records_left_out(self) -> None:
        warm = stream_record([0.1], 1, end=9.0)
        warm.warmup = True
        measured = stream_record([1.1], 1, start=1.0, end=1.2)
        measurements = summarize([warm, measured])
        assert measurements.requests == 1
        assert measurements.warmup_requests == 1
        assert measurements.e2e_latency.max == pytest.approx(0.2)

    def test_queued_requests_leave_send_lag(self) -> None:
        waited = stream_record([2.1], 1, end=2.2)
        waited.sent = 2.0
        waited.queued = True
        on_time = stream_record([0.1], 1, end=0.2)
        assert summarize([waited, on_time]).send_lag.count == 1


class TestPercentileEdges:
    def test_one_sample(self) -> None:
        assert LatencyHistogram.of([0.042]).percentile(99) == pytest.approx(0.042)

    def test_even_count_takes_lower_middle(self) -> None:
        assert LatencyHistogram.of([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]).percentile(50) == pytest.approx(
            0.3, rel=1e-3
        )

    def test_equal_values(self) -> None:
        histogram = LatencyHistogram.of([0.25] * 7)
        assert histogram.percentile(1) == histogram.percentile(100) == pytest.approx(0.25)

    def test_weighted_record_counts(self) -> None:
        histogram = LatencyHistogram()
        histogram.record(0.01, 9)
        histogram.record(1.0)
        assert histogram.count == 10
        assert histogram.percentile(90) == pytest.approx(0.01, rel=1e-3)
        assert histogram.percentile(91) == pytest.approx(1.0)
        assert histogram.mean == pytest.approx(0.109)
