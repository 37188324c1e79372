"""Exact-match response cache in Redis, scoped to the tenant.

The key is a SHA-256 over a canonical JSON of the tenant, the model alias and every request
field except the few that cannot change the output (``OUTPUT_NEUTRAL_FIELDS``): fields the
gateway does not know are part of the key, never dropped from it. An absent sampling
parameter stays absent, so it means the provider's default and never matches an explicit 0.
Only deterministic requests (temperature 0, or a seed) are cached unless the request opts in
with ``x-cache-opt-in: true``. Only complete responses are stored: every choice has a
finish_reason, and a stream ended with [DONE] and no error event.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from starlette.datastructures import Headers

from target_service.config import CacheConfig
from target_service.metrics import GatewayMetrics
from target_service.redis_state import RedisGate, RedisUnavailable

OUTPUT_NEUTRAL_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store"})
"""Request fields that cannot change the completion: the transport, and the caller's own labels."""

OPT_IN_HEADER = "x-cache-opt-in"
ENTRY_VERSION = 1

_MESSAGE_DELTA_KEYS = frozenset({"role", "content", "reasoning_content", "refusal", "tool_calls"})
_TEXT_DELTA_KEYS = ("content", "reasoning_content", "refusal")


def canonical(value: Any) -> Any:
    """Return ``value`` with whole floats as ints, so 0.0 and 0 give the same cache key."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def cache_key(tenant: str, model: str, body: dict[str, Any]) -> str:
    """Return the Redis key of a request's cache entry; the tenant is in the key and in the digest."""
    material = {
        "tenant": tenant,
        "model": model,
        "request": {
            name: canonical(value) for name, value in body.items() if name not in OUTPUT_NEUTRAL_FIELDS
        },
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"slogate:cache:{{{tenant}}}:{hashlib.sha256(text.encode()).hexdigest()}"


def is_deterministic(body: dict[str, Any]) -> bool:
    """Return True for temperature 0 or a seed. An absent temperature is the provider's default, not 0."""
    temperature = body.get("temperature")
    zero_temperature = (
        isinstance(temperature, int | float) and not isinstance(temperature, bool) and temperature == 0
    )
    seeded = isinstance(body.get("seed"), int) and not isinstance(body.get("seed"), bool)
    return zero_temperature or seeded


def cache_control(headers: Headers) -> set[str]:
    """Return the lower-case directives of the request's Cache-Control header."""
    value = headers.get("cache-control", "")
    return {part.strip().split("=", 1)[0].lower() for part in value.split(",") if part.strip()}


@dataclass(frozen=True)
class CachePlan:
    """What the cache does for one request, and the x-cache header value when nothing is looked up."""

    key: str | None
    lookup: bool
    store: bool
    result: str
    """Metric result if no lookup happens (skip or bypass); replaced by the lookup's own result."""

    @property
    def header(self) -> str:
        return "bypass"


NO_CACHE = CachePlan(None, lookup=False, store=False, result="")


class ResponseCache:
    """Looks up and stores complete responses through the Redis gate; a Redis failure skips the cache."""

    def __init__(self, gate: RedisGate, config: CacheConfig, metrics: GatewayMetrics) -> None:
        self.gate = gate
        self.config = config
        self.metrics = metrics
        self.ttl_ms = round(config.ttl_s * 1000)

    def plan(self, tenant: str, model: str, body: dict[str, Any], headers: Headers) -> CachePlan:
        if not self.config.enabled:
            return NO_CACHE
        opted_in = headers.get(OPT_IN_HEADER, "").strip().lower() == "true"
        if not (is_deterministic(body) or opted_in):
            return CachePlan(None, lookup=False, store=False, result="skip")
        directives = cache_control(headers)
        key = cache_key(tenant, model, body)
        store = "no-store" not in directives
        if "no-cache" in directives:
            return CachePlan(key, lookup=False, store=store, result="bypass")
        return CachePlan(key, lookup=True, store=store, result="miss")

    def count(self, tenant: str, model: str, result: str) -> None:
        self.metrics.cache_results.labels(tenant=tenant, model=model, result=result).inc()

    async def lookup(self, plan: CachePlan) -> dict[str, Any] | None:
        """Return the cached completion, or None on a miss or when Redis fails."""
        assert plan.key is not None
        key = plan.key
        try:
            raw = await self.gate.run("cache", lambda client: client.get(key))
        except RedisUnavailable:
            return None
        if raw is None:
            return None
        try:
            entry = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(entry, dict) or entry.get("v") != ENTRY_VERSION:
            return None
        completion = entry.get("completion")
        return completion if isinstance(completion, dict) else None

    async def store(self, plan: CachePlan, completion: dict[str, Any]) -> str:
        """Store a complete response; return the metric result, store or skip (too large, or Redis failed)."""
        assert plan.key is not None
        key = plan.key
        raw = json.dumps({"v": ENTRY_VERSION, "completion": completion}, separators=(",", ":")).encode()
        if len(raw) > self.config.max_entry_bytes:
            return "skip"

        async def write(client: redis.Redis) -> None:
            await client.set(key, raw, px=self.ttl_ms)

        try:
            await self.gate.run("cache", write)
        except RedisUnavailable:
            return "skip"
        return "store"


def complete_completion(body: Any) -> dict[str, Any] | None:
    """Return a non-streamed completion if it is complete enough to cache, else None."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list) or not body["choices"]:
        return None
    for choice in body["choices"]:
        if not isinstance(choice, dict) or not choice.get("finish_reason") or choice.get("logprobs"):
            return None
    return body


class CompletionAssembler:
    """Rebuilds a chat completion from stream chunks, so a stream can be cached and replayed either way.

    Anything it does not know how to merge (logprobs, unknown delta fields) makes the stream
    uncacheable rather than cached incompletely.
    """

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.cacheable = True

    def feed(self, event: dict[str, Any]) -> None:
        if not self.head:
            self.head = {
                key: event[key] for key in ("id", "created", "model", "system_fingerprint") if key in event
            }
        if isinstance(event.get("usage"), dict):
            self.usage = event["usage"]
        for choice in event.get("choices") or ():
            self._feed_choice(choice)

    def _feed_choice(self, choice: Any) -> None:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict) or choice.get("logprobs") or set(delta) - _MESSAGE_DELTA_KEYS:
            self.cacheable = False
            return
        state = self.choices.setdefault(
            int(choice.get("index", 0)), {"message": {"role": "assistant"}, "finish_reason": None}
        )
        message = state["message"]
        if delta.get("role"):
            message["role"] = delta["role"]
        for key in _TEXT_DELTA_KEYS:
            if isinstance(delta.get(key), str):
                message[key] = message.get(key, "") + delta[key]
        for call in delta.get("tool_calls") or ():
            self._merge_tool_call(message, call)
        if choice.get("finish_reason"):
            state["finish_reason"] = choice["finish_reason"]

    def _merge_tool_call(self, message: dict[str, Any], call: Any) -> None:
        if not isinstance(call, dict):
            self.cacheable = False
            return
        calls = message.setdefault("tool_calls", [])
        position = int(call.get("index", len(calls)))
        while len(calls) <= position:
            calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        target = calls[position]
        if call.get("id"):
            target["id"] = call["id"]
        if call.get("type"):
            target["type"] = call["type"]
        function = call.get("function") or {}
        target["function"]["name"] += function.get("name") or ""
        target["function"]["arguments"] += function.get("arguments") or ""

    def completion(self) -> dict[str, Any] | None:
        """Return the assembled completion, or None unless every choice finished and nothing was unknown."""
        if not self.cacheable or not self.choices:
            return None
        if any(state["finish_reason"] is None for state in self.choices.values()):
            return None
        choices = [
            {
                "index": index,
                "message": state["message"],
                "finish_reason": state["finish_reason"],
                "logprobs": None,
            }
            for index, state in sorted(self.choices.items())
        ]
        completion: dict[str, Any] = {"object": "chat.completion", **self.head, "choices": choices}
        if self.usage is not None:
            completion["usage"] = self.usage
        return completion


def completion_chunks(completion: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """Return the stream chunks that replay a cached completion: the message, its finish, and usage."""
    head: dict[str, Any] = {
        key: completion[key] for key in ("id", "created", "model", "system_fingerprint") if key in completion
    }
    head["object"] = "chat.completion.chunk"
    chunks: list[dict[str, Any]] = []
    for choice in completion["choices"]:
        delta = dict(choice.get("message") or {})
        if "tool_calls" in delta:
            delta["tool_calls"] = [
                {"index": position, **call} for position, call in enumerate(delta["tool_calls"])
            ]
        index = choice.get("index", 0)
        chunks.append({**head, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        finish = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
        chunks.append({**head, "choices": [finish]})
    if include_usage and completion.get("usage") is not None:
        chunks.append({**head, "choices": [], "usage": completion["usage"]})
    return chunks
