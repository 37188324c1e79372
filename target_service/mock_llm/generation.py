"""Deterministic completions of the mock LLM and the OpenAI response shapes that carry them.

A mock "token" is one word from ``WORDS``. Every token after the first carries its leading
space, so the content is the tokens joined with no separator. Prompt tokens are approximated
by the whitespace-separated word count of all message text. That count is close to real
tokenizers only for short English words.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

# Some words are multi-byte in UTF-8, so streams exercise characters split across network chunks.
WORDS = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "latency", "token", "gateway", "budget",
    "stream", "cache", "café", "naïve", "façade", "über", "東京", "数据", "résumé", "Zürich",
)  # fmt: skip


@dataclass(frozen=True)
class Completion:
    """The output of one request: its tokens, why it stopped and its usage."""

    id: str
    created: int
    model: str
    tokens: list[str]
    finish_reason: str
    prompt_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    def usage(self) -> dict[str, int]:
        completion_tokens = len(self.tokens)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }


def generate(
    seed: int, model: str, messages: list[Any], output_tokens: int, max_tokens: int | None
) -> Completion:
    """Return the completion for ``messages``, which depends only on the seed, the messages and the length."""
    length = output_tokens if max_tokens is None else min(output_tokens, max_tokens)
    rng = random.Random(message_seed(seed, messages))
    words = [rng.choice(WORDS) for _ in range(length)]
    tokens = [word if index == 0 else " " + word for index, word in enumerate(words)]
    finish_reason = "length" if max_tokens is not None and max_tokens < output_tokens else "stop"
    return Completion(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model,
        tokens=tokens,
        finish_reason=finish_reason,
        prompt_tokens=count_prompt_tokens(messages),
    )


def fixed_completion(model: str, messages: list[Any], text: str, max_tokens: int | None) -> Completion:
    """Return a completion of ``text``, one token per space-separated word, cut at ``max_tokens``."""
    words = text.split(" ")
    tokens = [word if index == 0 else " " + word for index, word in enumerate(words)]
    cut = max_tokens is not None and max_tokens < len(tokens)
    return Completion(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=model,
        tokens=tokens[:max_tokens] if cut else tokens,
        finish_reason="length" if cut else "stop",
        prompt_tokens=count_prompt_tokens(messages),
    )


def message_seed(seed: int, messages: list[Any]) -> int:
    """Return an RNG seed from ``seed`` and a SHA-256 of the canonical JSON of ``messages``.

    Python's ``hash()`` is salted per process, so it would give other output after a restart.
    """
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{seed}\n{canonical}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def count_prompt_tokens(messages: list[Any]) -> int:
    """Count the whitespace-separated words of every message's text content."""
    return sum(len(text.split()) for text in _message_texts(messages))


def _message_texts(messages: list[Any]) -> list[str]:
    texts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            # Content parts, as in [{"type": "text", "text": "..."}]. Other part types carry no words.
            texts.extend(
                part["text"]
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
    return texts


def completion_body(completion: Completion) -> dict[str, Any]:
    """Return the ``chat.completion`` object of a non-streamed response."""
    return {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": completion.usage(),
    }


def chunk_body(
    completion: Completion,
    delta: dict[str, str],
    finish_reason: str | None = None,
    include_usage: bool = False,
) -> dict[str, Any]:
    """Return one ``chat.completion.chunk`` with one choice and, when usage was requested, ``usage: null``."""
    chunk: dict[str, Any] = {
        "id": completion.id,
        "object": "chat.completion.chunk",
        "created": completion.created,
        "model": completion.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if include_usage:
        chunk["usage"] = None
    return chunk


def usage_chunk_body(completion: Completion) -> dict[str, Any]:
    """Return the final chunk of a stream that requested usage: no choices, usage set."""
    return {
        "id": completion.id,
        "object": "chat.completion.chunk",
        "created": completion.created,
        "model": completion.model,
        "choices": [],
        "usage": completion.usage(),
    }
