"""aiohttp server of the mock upstream LLM: an OpenAI-compatible chat completions API with set timing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from target_service.mock_llm.generation import (
    Completion,
    chunk_body,
    completion_body,
    generate,
    usage_chunk_body,
)
from target_service.mock_llm.settings import MockSettings


@dataclass
class MockStats:
    """Counters of chat completion requests that reached the mock. ``errors`` counts every 4xx and 5xx."""

    requests: int = 0
    errors: int = 0
    in_flight: int = 0


class MockRequestError(Exception):
    """A request that gets an OpenAI error response."""

    def __init__(self, status: int, message: str, type_: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status)


SETTINGS_KEY = web.AppKey("settings", MockSettings)
STATS_KEY = web.AppKey("stats", MockStats)
ERROR_RNG_KEY = web.AppKey("error_rng", random.Random)
LIMIT_KEY = web.AppKey("limit", asyncio.Semaphore)


def create_mock_app(settings: MockSettings) -> web.Application:
    """Build the mock's aiohttp application. Each app has its own counters and error sequence."""
    app = web.Application()
    app[SETTINGS_KEY] = settings
    app[STATS_KEY] = MockStats()
    app[ERROR_RNG_KEY] = random.Random(settings.seed)
    if settings.max_concurrency is not None:
        app[LIMIT_KEY] = asyncio.Semaphore(settings.max_concurrency)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/mock/stats", stats)
    return app


async def chat_completions(request: web.Request) -> web.StreamResponse:
    limit = request.app.get(LIMIT_KEY)
    if limit is None:
        return await _serve(request)
    async with limit:
        return await _serve(request)


async def _serve(request: web.Request) -> web.StreamResponse:
    arrived_s = asyncio.get_running_loop().time()
    stats = request.app[STATS_KEY]
    stats.requests += 1
    stats.in_flight += 1
    try:
        response = await _answer(request, arrived_s)
    except MockRequestError as exc:
        response = exc.response()
    finally:
        stats.in_flight -= 1
    if response.status >= 400:
        stats.errors += 1
    return response


async def _answer(request: web.Request, arrived_s: float) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    body = await _read_body(request)
    if body["model"] != settings.model:
        raise MockRequestError(
            404,
            f"The model {body['model']!r} does not exist.",
            "invalid_request_error",
            "model_not_found",
            "model",
        )
    if request.app[ERROR_RNG_KEY].random() < settings.error_rate:
        raise MockRequestError(500, "injected mock upstream error", "server_error", "mock_injected_error")
    completion = generate(
        settings.seed, settings.model, body["messages"], settings.output_tokens, _max_tokens(body)
    )
    if body.get("stream") is True:
        return await _stream(request, settings, completion, arrived_s, _wants_usage(body))
    chunk_count = _chunk_count(completion, settings)
    await _sleep_until(arrived_s + settings.chunk_due_s(max(chunk_count - 1, 0)))
    return web.json_response(completion_body(completion), dumps=_dumps)


async def _stream(
    request: web.Request,
    settings: MockSettings,
    completion: Completion,
    arrived_s: float,
    include_usage: bool,
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"cache-control": "no-cache"})
    response.content_type = "text/event-stream"
    await response.prepare(request)
    # A client that went away needs no more events.
    with contextlib.suppress(ConnectionResetError):
        await _write_events(response, settings, completion, arrived_s, include_usage)
    return response


async def _write_events(
    response: web.StreamResponse,
    settings: MockSettings,
    completion: Completion,
    arrived_s: float,
    include_usage: bool,
) -> None:
    role_delta = {"role": "assistant", "content": ""}
    await response.write(_event(chunk_body(completion, role_delta, include_usage=include_usage)))

    for index, start in enumerate(range(0, len(completion.tokens), settings.chunk_tokens)):
        # Each chunk waits for its absolute due time, so slow writes or late wake-ups do not add up.
        await _sleep_until(arrived_s + settings.chunk_due_s(index))
        text = "".join(completion.tokens[start : start + settings.chunk_tokens])
        await response.write(_event(chunk_body(completion, {"content": text}, include_usage=include_usage)))

    finish = chunk_body(completion, {}, completion.finish_reason, include_usage=include_usage)
    tail = _event(finish)
    if include_usage:
        tail += _event(usage_chunk_body(completion))
    await response.write(tail + b"data: [DONE]\n\n")
    await response.write_eof()


async def _read_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads)
    except ValueError:
        raise MockRequestError(
            400, "The body is not valid JSON.", "invalid_request_error", "invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise MockRequestError(
            400, "The body must be a JSON object.", "invalid_request_error", "invalid_body"
        )
    if not isinstance(body.get("model"), str):
        raise MockRequestError(
            400, "'model' must be a string.", "invalid_request_error", "invalid_model", "model"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MockRequestError(
            400,
            "'messages' must be a non-empty array.",
            "invalid_request_error",
            "invalid_messages",
            "messages",
        )
    return body


def _max_tokens(body: dict[str, Any]) -> int | None:
    """Return max_completion_tokens, else max_tokens, else None, and reject values below 1."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise MockRequestError(
                400,
                f"'{name}' must be an integer of at least 1.",
                "invalid_request_error",
                "invalid_value",
                name,
            )
        return value
    return None


def _wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _chunk_count(completion: Completion, settings: MockSettings) -> int:
    return -(-len(completion.tokens) // settings.chunk_tokens)


async def _sleep_until(due_s: float) -> None:
    delay_s = due_s - asyncio.get_running_loop().time()
    if delay_s > 0:
        await asyncio.sleep(delay_s)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + _dumps(payload).encode() + b"\n\n"


async def list_models(request: web.Request) -> web.Response:
    model = {
        "id": request.app[SETTINGS_KEY].model,
        "object": "model",
        "created": 0,
        "owned_by": "slogate-mock",
    }
    return web.json_response({"object": "list", "data": [model]})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def stats(request: web.Request) -> web.Response:
    counters = request.app[STATS_KEY]
    return web.json_response(
        {"requests": counters.requests, "errors": counters.errors, "in_flight": counters.in_flight}
    )
