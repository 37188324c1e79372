"""Reading an upstream body that the server cuts right after its last bytes."""

from __future__ import annotations

import asyncio

import aiohttp

from target_service.config import UpstreamConfig
from target_service.metrics import GatewayMetrics
from target_service.providers import Upstream, UpstreamCall

CUT_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    b"6\r\ndata: \r\n"
    b"9\r\nlast word\r\n"
)


async def _read_cut_stream() -> tuple[bytes, BaseException | None]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(CUT_RESPONSE)  # the chunks and the close reach the client together
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = Upstream("cut", UpstreamConfig(base_url=f"http://127.0.0.1:{port}/v1"), GatewayMetrics())
    try:
        async with aiohttp.ClientSession() as session:
            response = await session.post(upstream.chat_url, json={})
            await asyncio.sleep(0.2)  # the close has arrived before the first read
            call = UpstreamCall(upstream, response, asyncio.get_running_loop().time() + 5)
            loop_time = asyncio.get_running_loop().time
            received = await call.read_chunk(loop_time() + 5, "idle", "req-1")
            error: BaseException | None = None
            try:
                await call.read_chunk(loop_time() + 5, "idle", "req-1")
            except aiohttp.ClientPayloadError as exc:
                error = exc
            response.close()
            return received, error
    finally:
        server.close()
        await server.wait_closed()


def test_read_chunk_returns_bytes_before_cut() -> None:
    received, error = asyncio.run(_read_cut_stream())
    assert received == b"data: last word"
    assert isinstance(error, aiohttp.ClientPayloadError)
