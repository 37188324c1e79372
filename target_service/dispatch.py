"""Send a request along its model's fallback chain, with circuit breakers and retries, until one responds.

For each upstream of the chain in order: ask its breaker for leave, try it, and retry a retryable
failure after a jittered backoff while attempts and the retry budget last. An upstream that fails
for good, or whose breaker is open, hands the request to the next one. All of this happens before
any byte reaches the client: a stream is returned only once its first token arrived.
"""

from __future__ import annotations

import asyncio
import json
import logging

from fastapi.responses import Response

from target_service.config import RouteTarget
from target_service.errors import BreakerOpenError, PassthroughError, UpstreamError
from target_service.exchange import Exchange
from target_service.observability import log_event
from target_service.providers import Upstream
from target_service.relay import Attempt, StreamRelay, read_completion
from target_service.resilience import BreakerPermit

Outcome = StreamRelay | Response
"""A stream whose first token arrived, or a complete non-streamed response."""


class Dispatcher:
    """Tries the upstreams of one request's chain; see the module docstring for the order."""

    def __init__(self, exchange: Exchange, chain: list[RouteTarget]) -> None:
        self.exchange = exchange
        self.gateway = exchange.gateway
        self.record = exchange.record
        self.chain = chain

    async def run(self) -> Outcome:
        """Return the first upstream outcome that succeeded; raise the last failure when none did."""
        last_error: UpstreamError | None = None
        for position, target in enumerate(self.chain):
            upstream = self.gateway.upstreams[target.upstream]
            try:
                outcome = await self._try_upstream(upstream, target)
            except PassthroughError as exc:
                if exc.status != 429:
                    raise  # the client's request is at fault, so another upstream would reject it too
                last_error = exc
            except UpstreamError as exc:
                last_error = exc
            else:
                if position > 0:
                    self.gateway.metrics.fallbacks.labels(
                        model=self.exchange.alias, upstream=upstream.name
                    ).inc()
                return outcome
            self._log_fallback(position, last_error)
        assert last_error is not None
        raise last_error

    async def _try_upstream(self, upstream: Upstream, target: RouteTarget) -> Outcome:
        permit = self._permit(upstream)
        upstream.retry_budget.record_attempt()
        retries = 0
        while True:
            try:
                return await self._attempt(upstream, target, permit)
            except UpstreamError as exc:
                error = exc
            retries += 1
            delay_s = self._retry_delay(upstream, error, retries)
            if delay_s is None:
                raise error
            self._log_retry(upstream, error, retries, delay_s)
            await asyncio.sleep(delay_s)
            permit = self._permit(upstream)

    def _permit(self, upstream: Upstream) -> BreakerPermit:
        permit = upstream.breaker.acquire()
        if permit is None:
            self.gateway.metrics.breaker_rejections.labels(upstream=upstream.name).inc()
            self.record.upstream = self.record.upstream or upstream.name
            raise BreakerOpenError(upstream.name, upstream.breaker.retry_after_s())
        return permit

    def _retry_delay(self, upstream: Upstream, error: UpstreamError, retries: int) -> float | None:
        """Return the wait before retry number ``retries``, or None when the request must not retry."""
        if not error.retryable or retries >= upstream.config.retry.max_attempts:
            return None
        delay_s = upstream.retry_policy.backoff_s(retries, error.retry_after_s)
        if delay_s is None:
            return None
        if not upstream.retry_budget.try_spend():
            self.gateway.metrics.retry_budget_exhausted.labels(upstream=upstream.name).inc()
            return None
        self.gateway.metrics.upstream_retries.labels(
            upstream=upstream.name, error_class=error.error_class
        ).inc()
        return delay_s

    async def _attempt(self, upstream: Upstream, target: RouteTarget, permit: BreakerPermit) -> Outcome:
        record, config = self.record, upstream.config
        record.attempts += 1
        record.upstream = upstream.name
        assert record.span is not None  # the middleware starts a span for every chat request
        span = self.gateway.tracer.attempt_span(record.span, upstream.name, record.attempts)
        first_token_timeout_s = config.first_token_timeout_s if record.stream else config.total_timeout_s
        started = asyncio.get_running_loop().time()
        try:
            call = await upstream.open_chat(
                self.gateway.session,
                upstream_payload(self.exchange, target.upstream_model),
                record.request_id,
                self._trace_headers(span.traceparent()),
                first_token_timeout_s,
            )
            attempt = Attempt(call, permit, span)
            if not record.stream:
                return await read_completion(attempt, self.exchange)
            relay = StreamRelay(attempt, self.exchange)
            await relay.read_prelude(started + first_token_timeout_s)
            return relay
        except PassthroughError as exc:
            # The upstream responded, so it is up: a 4xx counts as a success, a 429 not at all.
            if exc.status == 429:
                permit.release()
            else:
                permit.success()
            span.end(f"HTTP {exc.status}")
            raise
        except UpstreamError as exc:
            permit.failure()
            span.end(exc.error_class)
            raise
        except BaseException:
            permit.release()
            span.end("cancelled")
            raise

    def _trace_headers(self, traceparent: str) -> dict[str, str]:
        headers = {"traceparent": traceparent}
        if self.record.tracestate is not None:
            headers["tracestate"] = self.record.tracestate
        return headers

    def _log_retry(self, upstream: Upstream, error: UpstreamError, retries: int, delay_s: float) -> None:
        if upstream.log_throttle.allow("upstream_retry"):
            log_event(
                "upstream_retry",
                logging.INFO,
                request_id=self.record.request_id,
                upstream=upstream.name,
                error_class=error.error_class,
                retry=retries,
                delay_ms=round(delay_s * 1000, 1),
            )

    def _log_fallback(self, position: int, error: UpstreamError) -> None:
        if position + 1 >= len(self.chain):
            return
        failed = self.gateway.upstreams[self.chain[position].upstream]
        if failed.log_throttle.allow("fallback"):
            log_event(
                "fallback",
                logging.INFO,
                request_id=self.record.request_id,
                model=self.record.model,
                failed_upstream=failed.name,
                error_class=error.error_class,
                next_upstream=self.chain[position + 1].upstream,
            )


def upstream_payload(exchange: Exchange, upstream_model: str) -> bytes:
    """Return the JSON sent upstream: the client's body with the upstream model name.

    Streams always ask for usage, so the gateway can count tokens whether or not the client asked.
    """
    body = exchange.body
    payload = {**body, "model": upstream_model}
    if body.get("stream") is True:
        payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
