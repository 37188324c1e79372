"""Test-only patches that break one gateway rule, chosen by SLOGATE_TEST_BREAK.

Python imports ``sitecustomize`` at start-up from PYTHONPATH, so the gateway processes that a
test's stack starts run with the rule broken, and the test can show that a scenario's gate
catches it. Nothing outside tests/ refers to this module.
"""

import asyncio
import os

BREAK = os.environ.get("SLOGATE_TEST_BREAK", "")


def _never_hit() -> None:
    from target_service import cache

    async def lookup(self, plan):  # type: ignore[no-untyped-def]
        return None

    cache.ResponseCache.lookup = lookup


def _key_without_tenant() -> None:
    from target_service import cache

    original = cache.cache_key

    def cache_key(tenant, model, body):  # type: ignore[no-untyped-def]
        return original("shared", model, body)

    cache.cache_key = cache_key


def _read_then_write() -> None:
    """Replace the atomic script by a separate count and add, as a naive limiter would."""
    import uuid

    from target_service import ratelimit

    async def admit(self, principal, model, reserved_tokens):  # type: ignore[no-untyped-def]
        checks = [check for check in self.checks_for(principal, model, reserved_tokens) if check.kind == "R"]
        admission = ratelimit.Admission(uuid.uuid4().hex, [], reserved_tokens)
        client = self.gate.client
        for check in checks:
            now_ms = int((await client.time())[0]) * 1000
            await client.zremrangebyscore(check.keys[0], "-inf", now_ms - self.window_ms)
            used = await client.zcard(check.keys[0])
            if used >= check.limit:
                raise ratelimit.RateLimitError(check, 1000, principal, {})
            await asyncio.sleep(0.005)
            await client.zadd(check.keys[0], {admission.member: now_ms})
        return admission

    ratelimit.RateLimiter.admit = admit


def _fail_with_500() -> None:
    from target_service import ratelimit

    def unchecked(self, admission, principal, model, exc):  # type: ignore[no-untyped-def]
        raise RuntimeError(f"rate limiter broke on a Redis failure: {exc}")

    ratelimit.RateLimiter._unchecked = unchecked


def _no_fallback() -> None:
    """Send every request to its model's first upstream only, as a gateway without fallbacks would."""
    from target_service import dispatch

    original = dispatch.Dispatcher.__init__

    def __init__(self, exchange, chain):  # type: ignore[no-untyped-def]
        original(self, exchange, chain[:1])

    dispatch.Dispatcher.__init__ = __init__


def _exit_on_sigterm() -> None:
    """Exit at once on SIGTERM, cutting requests in flight, as a gateway without a drain would."""
    from target_service import lifecycle

    def handle_exit(self, sig, frame):  # type: ignore[no-untyped-def]
        os._exit(0)

    lifecycle.GatewayServer.handle_exit = handle_exit


_PATCHES = {
    "never_hit": _never_hit,
    "key_without_tenant": _key_without_tenant,
    "read_then_write": _read_then_write,
    "fail_with_500": _fail_with_500,
    "no_fallback": _no_fallback,
    "exit_on_sigterm": _exit_on_sigterm,
}

if BREAK in _PATCHES:
    _PATCHES[BREAK]()
