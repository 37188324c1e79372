"""Parsing and encoding server-sent events."""

from __future__ import annotations

import json

import pytest

from target_service.streaming import SSEDecoder, SSEProtocolError, encode_event

STREAM = (
    'data: {"choices":[{"delta":{"content":"café 東京"}}]}\n\n'
    ": keep-alive comment\n\n"
    'data: {"choices":[{"delta":{"content":"😀"}}]}\r\n\r\n'
    "data: [DONE]\n\n"
).encode()


def decode_all(chunks: list[bytes]) -> list[bytes]:
    decoder = SSEDecoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)]


def test_decoder_whole_stream() -> None:
    events = decode_all([STREAM])
    assert len(events) == 3
    assert events[-1] == b"[DONE]"


def test_decoder_byte_by_byte_keeps_utf8() -> None:
    events = decode_all([STREAM[index : index + 1] for index in range(len(STREAM))])
    assert json.loads(events[0])["choices"][0]["delta"]["content"] == "café 東京"
    assert json.loads(events[1])["choices"][0]["delta"]["content"] == "😀"


@pytest.mark.parametrize("split_at", range(1, 60))
def test_decoder_any_split_same_events(split_at: int) -> None:
    assert decode_all([STREAM[:split_at], STREAM[split_at:]]) == decode_all([STREAM])


def test_decoder_joins_data_lines() -> None:
    assert decode_all([b"data: first\ndata: second\n\n"]) == [b"first\nsecond"]


def test_decoder_ignores_other_fields() -> None:
    assert decode_all([b"event: message\nid: 7\nretry: 10\ndata: x\n\n"]) == [b"x"]


def test_decoder_holds_incomplete_event() -> None:
    assert decode_all([b"data: partial\n"]) == []


def test_decoder_rejects_oversized_event() -> None:
    decoder = SSEDecoder(max_event_bytes=16)
    with pytest.raises(SSEProtocolError):
        decoder.feed(b"data: " + b"x" * 32)


def test_encode_event_single_line() -> None:
    assert encode_event(b'{"a":1}') == b'data: {"a":1}\n\n'


def test_encode_event_round_trip() -> None:
    assert decode_all([encode_event(b"line one\nline two")]) == [b"line one\nline two"]
