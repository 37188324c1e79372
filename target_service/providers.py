"""Calls to OpenAI-compatible upstreams over the gateway's shared aiohttp session, with errors classified."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import aiohttp

from target_service.config import UpstreamConfig
from target_service.errors import ErrorClass, PassthroughError, UpstreamError
from target_service.observability import log_event

MAX_ERROR_BODY_BYTES = 64 * 1024


class UpstreamCall:
    """An upstream response with a 2xx status. The caller must call ``close`` when done with it."""

    def __init__(self, upstream: Upstream, response: aiohttp.ClientResponse) -> None:
        self.upstream = upstream
        self.response = response
        self._closed = False

    def close(self, abort: bool = False) -> None:
        """Return the connection to the pool, or drop it when ``abort`` is set so the upstream stops work.

        Closing twice is harmless.
        """
        if self._closed:
            return
        self._closed = True
        if abort:
            self.response.close()
        else:
            self.response.release()
        self.upstream.release_slot()


class Upstream:
    """One configured upstream: its URL, headers, timeouts and a cap on concurrent connections."""

    def __init__(self, name: str, config: UpstreamConfig) -> None:
        self.name = name
        self.config = config
        self.chat_url = config.base_url.rstrip("/") + "/chat/completions"
        self.timeout = aiohttp.ClientTimeout(
            total=config.total_timeout_s,
            connect=config.connect_timeout_s,
            sock_read=config.read_timeout_s,
        )
        self.headers = _request_headers(config.bearer_token())
        # The shared connector has no per-upstream limit, so this semaphore enforces max_connections.
        self._slots = asyncio.Semaphore(config.max_connections)

    def release_slot(self) -> None:
        self._slots.release()

    async def open_chat(
        self, session: aiohttp.ClientSession, payload: bytes, request_id: str
    ) -> UpstreamCall:
        """Send a chat completion request and return the open response once a 2xx status arrived.

        Raises PassthroughError for a 4xx and UpstreamError for every other failure.
        """
        await self._acquire_slot(request_id)
        try:
            response = await self._post(session, payload, request_id)
        except BaseException:
            self.release_slot()
            raise
        if 200 <= response.status < 300:
            return UpstreamCall(self, response)
        try:
            raise await self._status_error(response, request_id)
        finally:
            response.release()
            self.release_slot()

    async def _acquire_slot(self, request_id: str) -> None:
        try:
            async with asyncio.timeout(self.config.connect_timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            detail = f"all {self.config.max_connections} connections to upstream {self.name} stayed busy"
            raise self.failure("connect", request_id, detail, 504) from None

    async def _post(
        self, session: aiohttp.ClientSession, payload: bytes, request_id: str
    ) -> aiohttp.ClientResponse:
        headers = {**self.headers, "x-request-id": request_id}
        try:
            return await session.post(
                self.chat_url, data=payload, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except aiohttp.ConnectionTimeoutError as exc:
            raise self.failure("connect", request_id, f"connecting timed out: {exc}", 504) from exc
        except aiohttp.ClientConnectorError as exc:
            raise self.failure("connect", request_id, f"connection failed: {exc.os_error}", 502) from exc
        except TimeoutError as exc:
            raise self.failure("timeout", request_id, "no response before the timeout", 504) from exc
        except aiohttp.ClientError as exc:
            raise self.failure("stream", request_id, f"{type(exc).__name__}: {exc}", 502) from exc

    async def _status_error(self, response: aiohttp.ClientResponse, request_id: str) -> UpstreamError:
        status = response.status
        if 400 <= status < 500:
            body = await _read_error_body(response)
            content_type = response.headers.get("content-type", "application/json")
            self.log_failure("http_4xx", request_id, f"HTTP {status}", status)
            return PassthroughError(
                self.name, status, body, content_type, _passthrough_headers(response.headers)
            )
        return self.failure("http_5xx", request_id, f"HTTP {status}", 502, upstream_status=status)

    def failure(
        self,
        error_class: ErrorClass,
        request_id: str,
        detail: str,
        status: int,
        upstream_status: int | None = None,
    ) -> UpstreamError:
        """Log an upstream failure and return the error to send to the client."""
        self.log_failure(error_class, request_id, detail, upstream_status)
        code = "upstream_timeout" if status == 504 else "upstream_error"
        message = f"upstream {self.name} failed: {detail}"
        return UpstreamError(self.name, error_class, status, message, code)

    def log_failure(
        self, error_class: ErrorClass, request_id: str, detail: str, upstream_status: int | None = None
    ) -> None:
        log_event(
            "upstream_error",
            logging.WARNING,
            request_id=request_id,
            upstream=self.name,
            error_class=error_class,
            upstream_status=upstream_status,
            detail=detail,
        )


def _request_headers(api_key: str | None) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        # A compressing upstream or proxy would buffer SSE events until a compression block fills.
        "accept-encoding": "identity",
    }
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


def _passthrough_headers(headers: Mapping[str, str]) -> dict[str, str]:
    retry_after = headers.get("retry-after")
    return {"retry-after": retry_after} if retry_after is not None else {}


async def _read_error_body(response: aiohttp.ClientResponse) -> bytes:
    try:
        return await response.content.read(MAX_ERROR_BODY_BYTES)
    except (aiohttp.ClientError, TimeoutError):
        return b""
