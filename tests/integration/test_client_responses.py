"""The load engine's reading of responses a real gateway never sends, from a canned HTTP server."""

import asyncio
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web

from harness.load.engine import Target, run_load_blocking
from harness.metrics.summary import summarize
from harness.scenario.load import LoadSpec

FINISH = '{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}'
CONTENT = '{"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": null}]}'
CANNED: dict[str, tuple[str, bytes]] = {
    "ok": ("text/event-stream", f"data: {CONTENT}\n\ndata: {FINISH}\n\ndata: [DONE]\n\n".encode()),
    "choices-not-list": ("text/event-stream", b'data: {"choices": 5}\n\ndata: [DONE]\n\n'),
    "delta-string": ("text/event-stream", b'data: {"choices": [{"delta": "x"}]}\n\ndata: [DONE]\n\n'),
    "usage-list": ("text/event-stream", f'data: {FINISH[:-1]}, "usage": [1]}}\n\ndata: [DONE]\n\n'.encode()),
    "not-json": ("text/event-stream", b"data: {oops\n\ndata: [DONE]\n\n"),
    "no-done": ("text/event-stream", f"data: {CONTENT}\n\ndata: {FINISH}\n\n".encode()),
    "no-finish": ("text/event-stream", f"data: {CONTENT}\n\ndata: [DONE]\n\n".encode()),
    "error-event": (
        "text/event-stream",
        b'data: {"error": {"message": "upstream broke"}}\n\ndata: [DONE]\n\n',
    ),
    "multi-line-event": (
        "text/event-stream",
        b'data: {"choices": [{"index": 0, "delta": {"content": "a"},\n'
        b'data: "finish_reason": "stop"}]}\n\n'
        b"data: [DONE]\n\n",
    ),
    "crlf": (
        "text/event-stream",
        f"data: {CONTENT}\r\n\r\ndata: {FINISH}\r\n\r\ndata: [DONE]\r\n\r\n".encode(),
    ),
    "json-choice-int": ("application/json", b'{"choices": [1]}'),
}


@pytest.fixture(scope="module")
def canned_url() -> Iterator[str]:
    """Serve CANNED on 127.0.0.1 from a thread: POST /<case>/v1/chat/completions returns that body."""

    async def handle(request: web.Request) -> web.Response:
        content_type, body = CANNED[request.match_info["case"]]
        return web.Response(body=body, content_type=content_type)

    ready = threading.Event()
    holder: dict[str, object] = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/{case}/v1/chat/completions", handle)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        holder["port"] = runner.addresses[0][1]
        holder["loop"] = loop
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    yield f"http://127.0.0.1:{holder['port']}"
    loop = holder["loop"]
    assert isinstance(loop, asyncio.AbstractEventLoop)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def measure(base_url: str, case: str, stream: bool = True):  # type: ignore[no-untyped-def]
    spec = LoadSpec.model_validate(
        {
            "model": "open",
            "rate_per_s": 10,
            "duration": "200ms",
            "stream": stream,
            "requests": [{"messages": [{"role": "user", "content": "hello"}]}],
        }
    )
    return summarize(run_load_blocking(spec, Target([f"{base_url}/{case}"], "mock-llm")).records)


@pytest.mark.parametrize(
    ("case", "error_class"),
    [
        ("choices-not-list", "invalid_response"),
        ("delta-string", "invalid_response"),
        ("usage-list", "invalid_response"),
        ("not-json", "invalid_response"),
        ("no-done", "truncated"),
        ("no-finish", "truncated"),
        ("error-event", "sse_error"),
    ],
)
def test_malformed_stream_classified(canned_url: str, case: str, error_class: str) -> None:
    measurements = measure(canned_url, case)
    assert measurements.requests == 2
    assert measurements.error_classes == {error_class: 2}


def test_malformed_json_response_classified(canned_url: str) -> None:
    measurements = measure(canned_url, "json-choice-int", stream=False)
    assert measurements.error_classes == {"invalid_response": 2}


@pytest.mark.parametrize("case", ["ok", "multi-line-event", "crlf"])
def test_valid_stream_forms_succeed(canned_url: str, case: str) -> None:
    measurements = measure(canned_url, case)
    assert measurements.successes == 2
    assert measurements.ttft.count == 2
    assert measurements.token_sources == {"counted": 2}
