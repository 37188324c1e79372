"""Calls to OpenAI-compatible upstreams over the gateway's shared aiohttp session, with errors classified."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from target_service.config import UpstreamConfig
from target_service.errors import ErrorClass, PassthroughError, UpstreamError
from target_service.metrics import GatewayMetrics
from target_service.observability import LogThrottle, log_event
from target_service.resilience import CircuitBreaker, RetryBudget, RetryPolicy

MAX_ERROR_BODY_BYTES = 64 * 1024
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


class UpstreamCall:
    """An upstream response with a 2xx status. The caller must call ``close`` when done with it.

    ``deadline`` is the end of the attempt's total timeout, on the event loop's clock.
    """

    def __init__(self, upstream: Upstream, response: aiohttp.ClientResponse, deadline: float) -> None:
        self.upstream = upstream
        self.response = response
        self.deadline = deadline
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

    async def read_chunk(self, limit: float, what: str, request_id: str) -> bytes:
        """Return the next bytes of the body (b"" at its end), waiting until ``limit`` at most.

        ``limit`` is on the loop's clock. Past it, or past the total deadline, the connection is
        dropped and a timeout UpstreamError raised that names ``what`` was awaited; a timeout
        before the first token is retryable.
        """
        limit = min(limit, self.deadline)
        try:
            async with asyncio.timeout_at(limit):
                return await self.response.content.readany()
        except aiohttp.ClientPayloadError:
            # aiohttp raises as soon as the connection drops, even when bytes that arrived just
            # before the cut are still buffered. Hand those over first; the next read raises again.
            salvaged = _buffered_bytes(self.response.content)
            if not salvaged:
                raise
            return salvaged
        except TimeoutError:
            self.close(abort=True)
            which = "total" if limit >= self.deadline else what
            detail = f"the {which} timeout passed"
            retryable = what == "first-token"
            raise self.upstream.failure("timeout", request_id, detail, 504, retryable=retryable) from None


def _buffered_bytes(content: aiohttp.StreamReader) -> bytes:
    """Return (and consume) what the reader holds; aiohttp's public reads raise once it has failed."""
    try:
        return content._read_nowait(-1)
    except Exception:  # the private method changed shape; losing the tail beats failing the relay
        return b""


class Upstream:
    """One configured upstream: URL, headers, timeouts, a connection cap, breaker and retry budget."""

    def __init__(self, name: str, config: UpstreamConfig, metrics: GatewayMetrics) -> None:
        self.name = name
        self.config = config
        self.metrics = metrics
        self.chat_url = config.base_url.rstrip("/") + "/chat/completions"
        # Only the connect timeout is aiohttp's; first-token, idle and total are deadlines of the caller.
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=config.connect_timeout_s, sock_connect=config.connect_timeout_s
        )
        self.headers = _request_headers(config.bearer_token())
        # The shared connector has no per-upstream limit, so this semaphore enforces max_connections.
        self._slots = asyncio.Semaphore(config.max_connections)
        self.breaker = CircuitBreaker(name, config.breaker, metrics.record_breaker_state)
        self.retry_policy = RetryPolicy(config.retry)
        self.retry_budget = RetryBudget(config.retry)
        self.log_throttle = LogThrottle()
        metrics.breaker_state.labels(upstream=name).set(int(self.breaker.state))

    def release_slot(self) -> None:
        self._slots.release()

    async def open_chat(
        self,
        session: aiohttp.ClientSession,
        payload: bytes,
        request_id: str,
        headers: Mapping[str, str],
        headers_timeout_s: float,
    ) -> UpstreamCall:
        """Send a chat completion request and return the open response once a 2xx status arrived.

        The status and headers must arrive within ``headers_timeout_s``. Raises PassthroughError
        for a 4xx and UpstreamError for every other failure.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.total_timeout_s
        await self._acquire_slot(request_id)
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + headers_timeout_s)):
                response = await self._post(session, payload, request_id, headers)
        except TimeoutError:
            self.release_slot()
            raise self.failure(
                "timeout", request_id, "no response before the timeout", 504, retryable=True
            ) from None
        except BaseException:
            self.release_slot()
            raise
        if 200 <= response.status < 300:
            return UpstreamCall(self, response, deadline)
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
        self, session: aiohttp.ClientSession, payload: bytes, request_id: str, headers: Mapping[str, str]
    ) -> aiohttp.ClientResponse:
        sent_headers = {**self.headers, **headers, "x-request-id": request_id}
        try:
            return await session.post(
                self.chat_url, data=payload, headers=sent_headers, timeout=self.timeout, allow_redirects=False
            )
        except aiohttp.ConnectionTimeoutError as exc:
            detail = f"connecting timed out: {exc}"
            raise self.failure("connect", request_id, detail, 504, retryable=True) from exc
        except aiohttp.ClientConnectorError as exc:
            detail = f"connection failed: {exc.os_error}"
            raise self.failure("connect", request_id, detail, 502, retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise self.failure("stream", request_id, f"{type(exc).__name__}: {exc}", 502) from exc

    async def _status_error(self, response: aiohttp.ClientResponse, request_id: str) -> UpstreamError:
        status = response.status
        retry_after_s = parse_retry_after(response.headers)
        if 400 <= status < 500:
            body = await _read_error_body(response)
            content_type = response.headers.get("content-type", "application/json")
            self.log_failure("http_4xx", request_id, f"HTTP {status}", status)
            headers = _passthrough_headers(response.headers)
            return PassthroughError(self.name, status, body, content_type, headers, retry_after_s)
        return self.failure(
            "http_5xx",
            request_id,
            f"HTTP {status}",
            502,
            upstream_status=status,
            retryable=status in RETRYABLE_STATUSES,
            retry_after_s=retry_after_s,
        )

    def failure(
        self,
        error_class: ErrorClass,
        request_id: str,
        detail: str,
        status: int,
        upstream_status: int | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> UpstreamError:
        """Count and log an upstream failure, and return the error to send to the client."""
        self.log_failure(error_class, request_id, detail, upstream_status)
        code = "upstream_timeout" if status == 504 else "upstream_error"
        message = f"upstream {self.name} failed: {detail}"
        return UpstreamError(
            self.name, error_class, status, message, code, retryable=retryable, retry_after_s=retry_after_s
        )

    def log_failure(
        self, error_class: ErrorClass, request_id: str, detail: str, upstream_status: int | None = None
    ) -> None:
        self.metrics.upstream_errors.labels(upstream=self.name, error_class=error_class).inc()
        if not self.log_throttle.allow("upstream_error", error_class):
            return
        log_event(
            "upstream_error",
            logging.WARNING,
            request_id=request_id,
            upstream=self.name,
            error_class=error_class,
            upstream_status=upstream_status,
            detail=detail,
        )


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Return the wait an upstream asked for, in seconds, from retry-after-ms or Retry-After.

    Retry-After is delay seconds or an HTTP date (RFC 9110, section 10.2.3); an invalid value
    is ignored.
    """
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


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
