"""Cache keys, cacheability and the stream assembler, without Redis."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.datastructures import Headers

from target_service.cache import (
    CompletionAssembler,
    ResponseCache,
    cache_key,
    complete_completion,
    completion_chunks,
    is_deterministic,
)
from target_service.config import CacheConfig
from target_service.metrics import GatewayMetrics

BASE: dict[str, Any] = {
    "model": "mock-llm",
    "messages": [{"role": "user", "content": "hello"}],
    "temperature": 0,
}
VARIANTS: list[tuple[str, Any]] = [
    ("messages", [{"role": "user", "content": "hello!"}]),
    ("temperature", 0.5),
    ("top_p", 0.9),
    ("max_tokens", 7),
    ("stop", ["\n"]),
    ("n", 2),
    ("seed", 42),
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
    ("tool_choice", "auto"),
    ("response_format", {"type": "json_object"}),
    ("presence_penalty", 0.5),
    ("frequency_penalty", 0.5),
    ("logit_bias", {"50256": -100}),
    ("some_future_field", True),
]


def key(body: dict[str, Any], tenant: str = "team-a", model: str = "mock-llm") -> str:
    return cache_key(tenant, model, body)


@pytest.mark.parametrize(("field", "value"), VARIANTS)
def test_cache_key_covers_field(field: str, value: Any) -> None:
    assert key({**BASE, field: value}) != key(BASE)


def test_cache_key_scoped_to_tenant() -> None:
    assert key(BASE, tenant="team-a") != key(BASE, tenant="team-b")
    assert key(BASE, tenant="team-a").startswith("slogate:cache:{team-a}:")


def test_cache_key_scoped_to_model() -> None:
    assert key(BASE, model="small") != key(BASE, model="large")


def test_cache_key_absent_temperature_differs_from_zero() -> None:
    without = {name: value for name, value in BASE.items() if name != "temperature"}
    assert key(without) != key(BASE)


@pytest.mark.parametrize("field", ["stream", "stream_options", "user", "metadata", "store"])
def test_cache_key_ignores_output_neutral_field(field: str) -> None:
    assert key({**BASE, field: {"include_usage": True} if field == "stream_options" else True}) == key(BASE)


def test_cache_key_whole_floats_equal_ints() -> None:
    assert key({**BASE, "temperature": 0.0, "max_tokens": 8.0}) == key(
        {**BASE, "temperature": 0, "max_tokens": 8}
    )


def test_cache_key_field_order_irrelevant() -> None:
    reordered = dict(reversed(list(BASE.items())))
    assert key(reordered) == key(BASE)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"temperature": 0}, True),
        ({"temperature": 0.0}, True),
        ({"seed": 3, "temperature": 0.9}, True),
        ({}, False),
        ({"temperature": 0.2}, False),
        ({"temperature": False}, False),
        ({"seed": "3"}, False),
    ],
)
def test_deterministic_requests(body: dict[str, Any], expected: bool) -> None:
    assert is_deterministic(body) is expected


def plan(body: dict[str, Any], headers: dict[str, str] | None = None, enabled: bool = True):  # type: ignore[no-untyped-def]
    cache = ResponseCache(None, CacheConfig(enabled=enabled), GatewayMetrics())  # type: ignore[arg-type]
    return cache.plan("team-a", "mock-llm", {**BASE, **body}, Headers(headers or {}))


def test_plan_deterministic_looks_up_and_stores() -> None:
    result = plan({})
    assert result.lookup
    assert result.store


def test_plan_nondeterministic_skipped() -> None:
    result = plan({"temperature": 0.7})
    assert not result.lookup
    assert result.result == "skip"


def test_plan_opt_in_header_caches() -> None:
    assert plan({"temperature": 0.7}, {"x-cache-opt-in": "true"}).lookup


def test_plan_no_cache_stores_without_lookup() -> None:
    result = plan({}, {"cache-control": "no-cache"})
    assert not result.lookup
    assert result.store
    assert result.result == "bypass"


def test_plan_no_store_looks_up_only() -> None:
    result = plan({}, {"cache-control": "max-age=0, No-Store"})
    assert result.lookup
    assert not result.store


def test_plan_disabled_cache_does_nothing() -> None:
    assert plan({}, enabled=False).result == ""


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    return {
        "id": "c1",
        "created": 1,
        "model": "m",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }


def test_assembler_joins_content_and_usage() -> None:
    assembler = CompletionAssembler()
    for event in (
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
    ):
        assembler.feed(event)
    assembler.feed(chunk({}, "stop"))
    assembler.feed({"id": "c1", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
    completion = assembler.completion()
    assert completion is not None
    assert completion["choices"][0]["message"] == {"role": "assistant", "content": "Hello"}
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["usage"] == {"prompt_tokens": 1, "completion_tokens": 2}


def test_assembler_merges_tool_call_deltas() -> None:
    assembler = CompletionAssembler()
    first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"a"'}}
    assembler.feed(chunk({"role": "assistant", "tool_calls": [first]}))
    assembler.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}))
    assembler.feed(chunk({}, "tool_calls"))
    completion = assembler.completion()
    assert completion is not None
    (call,) = completion["choices"][0]["message"]["tool_calls"]
    assert call == {"id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"a": 1}'}}


def test_assembler_incomplete_without_finish_reason() -> None:
    assembler = CompletionAssembler()
    assembler.feed(chunk({"content": "partial"}))
    assert assembler.completion() is None


def test_assembler_rejects_unknown_delta_fields() -> None:
    assembler = CompletionAssembler()
    assembler.feed(chunk({"content": "x", "audio": {"data": "..."}}, "stop"))
    assert assembler.completion() is None


def test_assembler_rejects_logprobs() -> None:
    assembler = CompletionAssembler()
    event = chunk({"content": "x"}, "stop")
    event["choices"][0]["logprobs"] = {"content": []}
    assembler.feed(event)
    assert assembler.completion() is None


def test_complete_completion_needs_every_finish_reason() -> None:
    done = {"choices": [{"message": {"content": "a"}, "finish_reason": "stop"}]}
    cut = {"choices": [{"message": {"content": "a"}, "finish_reason": None}]}
    assert complete_completion(done) is done
    assert complete_completion(cut) is None
    assert complete_completion({"choices": []}) is None
    assert complete_completion([1]) is None


def test_chunks_replay_round_trips_through_assembler() -> None:
    completion = {
        "id": "c9",
        "created": 5,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "length"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    assembler = CompletionAssembler()
    for event in completion_chunks(completion, include_usage=True):
        assembler.feed(event)
    rebuilt = assembler.completion()
    assert rebuilt is not None
    assert rebuilt["choices"][0]["message"] == completion["choices"][0]["message"]
    assert rebuilt["usage"] == completion["usage"]


def test_chunks_omit_usage_unless_asked() -> None:
    completion = {
        "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1},
    }
    assert all("usage" not in event for event in completion_chunks(completion, include_usage=False))
