"""Rate limits and token budgets, checked and consumed by one atomic Redis script per request.

Requests and tokens per minute are counted in a sliding-window log: Redis keeps one entry per
admitted request (with its token count) for ``window_s``, so no window of that length ever
holds more than the allowance, including across any boundary. A fixed window can admit twice
its limit around the boundary, and a token bucket (GCRA) lets a full burst through and then
refills during the same minute, so neither gives "at most N in any minute". The cost is
memory proportional to the allowance, and every entry expires with its window.

Token limits reserve the prompt estimate plus ``max_tokens`` when a request arrives and move
the entry to the real usage when it ends. Redis keys carry the tenant as a hash tag, so one
request's keys share a Redis Cluster slot.
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any, Literal

import redis.asyncio as redis

from target_service.config import RateLimitConfig
from target_service.errors import GatewayError, InvalidRequestError
from target_service.metrics import GatewayMetrics
from target_service.redis_state import RedisGate, RedisUnavailable
from target_service.tenancy import Principal

CheckKind = Literal["R", "T", "D", "C"]
LEASE_MARGIN_S = 30.0
MS_PER_DAY = 86_400_000

_ADMIT = files("target_service").joinpath("lua/admit.lua").read_text(encoding="utf-8")
_RECONCILE = files("target_service").joinpath("lua/reconcile.lua").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Check:
    """One limit that applies to a request."""

    kind: CheckKind
    name: str
    """Metric label and message word: requests_per_minute, model_tokens_per_minute, concurrency..."""
    keys: tuple[str, ...]
    limit: int
    """Allowance in one window (per-minute limits scaled to ``window_s``), in flight, or per day."""
    cost: int


@dataclass
class Admission:
    """The outcome of the limit checks for one request, and what to undo or settle when it ends."""

    member: str
    checks: list[Check]
    reserved_tokens: int
    headers: dict[str, str] = field(default_factory=dict)
    checked: bool = True
    """False when Redis failed and the request was admitted unchecked (fail_open)."""
    settled: bool = False


class RateLimitError(GatewayError):
    """A limit rejected the request (429 with Retry-After)."""

    def __init__(
        self, check: Check, retry_after_ms: int, principal: Principal, headers: dict[str, str]
    ) -> None:
        seconds = retry_after_ms / 1000
        message = (
            f"Rate limit reached for {check.name.replace('_', ' ')} on {_scope(check, principal)}: "
            f"limit {check.limit}, this request needs {check.cost}. Retry after {seconds:.3f} s."
        )
        retry_headers = {"retry-after": str(math.ceil(seconds)), "retry-after-ms": str(retry_after_ms)}
        kind = "tokens" if check.kind in ("T", "D") else "requests"
        super().__init__(429, message, kind, code="rate_limit_exceeded", headers={**headers, **retry_headers})
        self.check = check


def _scope(check: Check, principal: Principal) -> str:
    if check.kind in ("C", "D"):
        return f"tenant {principal.tenant}"
    return f"key {principal.key_id}"


class RateLimiter:
    """Applies a tenant's limits with the admit and reconcile scripts, through the Redis gate."""

    def __init__(
        self, gate: RedisGate, config: RateLimitConfig, metrics: GatewayMetrics, lease_s: float
    ) -> None:
        self.gate = gate
        self.config = config
        self.metrics = metrics
        self.window_ms = round(config.window_s * 1000)
        self.lease_ms = round((lease_s + LEASE_MARGIN_S) * 1000)
        self._admit = gate.client.register_script(_ADMIT)
        self._reconcile = gate.client.register_script(_RECONCILE)

    def checks_for(self, principal: Principal, model: str, reserved_tokens: int) -> list[Check]:
        """Return the limits that apply to ``principal`` calling ``model``."""
        limits = principal.limits
        tag = f"slogate:rl:{{{principal.tenant}}}"
        key = f"{tag}:key:{principal.key_id}"
        model_limits = limits.models.get(model)
        checks = [
            self._window("R", "requests_per_minute", f"{key}:req", limits.requests_per_minute, 1),
            self._window("T", "tokens_per_minute", f"{key}:tok", limits.tokens_per_minute, reserved_tokens),
        ]
        if model_limits is not None:
            model_key = f"{key}:model:{model}"
            checks += [
                self._window(
                    "R", "model_requests_per_minute", f"{model_key}:req", model_limits.requests_per_minute, 1
                ),
                self._window(
                    "T",
                    "model_tokens_per_minute",
                    f"{model_key}:tok",
                    model_limits.tokens_per_minute,
                    reserved_tokens,
                ),
            ]
        if limits.concurrency is not None:
            checks.append(Check("C", "concurrency", (f"{tag}:inflight",), limits.concurrency, 1))
        if limits.daily_tokens is not None:
            day = datetime.now(UTC).strftime("%Y%m%d")
            checks.append(
                Check("D", "daily_tokens", (f"{tag}:day:{day}",), limits.daily_tokens, reserved_tokens)
            )
        return [check for check in checks if check.limit > 0]

    def _window(self, kind: CheckKind, name: str, key: str, per_minute: int | None, cost: int) -> Check:
        if per_minute is None:
            return Check(kind, name, (), 0, cost)
        allowance = max(1, math.floor(per_minute * self.config.window_s / 60))
        keys = (key,) if kind == "R" else (key, f"{key}:sum")
        return Check(kind, name, keys, allowance, cost)

    async def admit(self, principal: Principal, model: str, reserved_tokens: int) -> Admission:
        """Check and consume every limit at once; raise RateLimitError, or a 503 when failing closed."""
        member = uuid.uuid4().hex
        checks = self.checks_for(principal, model, reserved_tokens)
        admission = Admission(member, checks, reserved_tokens)
        if not checks:
            return admission
        _reject_oversized(checks)
        try:
            result = await self.gate.run("ratelimit", lambda client: self._run_admit(client, member, checks))
        except RedisUnavailable as exc:
            return self._unchecked(admission, principal, model, exc)
        if result[0] == 0:
            check = checks[int(result[1]) - 1]
            self.metrics.rate_limit_rejections.labels(
                principal.tenant, principal.key_id, model, check.name
            ).inc()
            raise RateLimitError(check, int(result[2]), principal, rejection_headers(checks, check))
        admission.headers = ratelimit_headers(checks, [int(value) for value in result[1:]])
        return admission

    async def _run_admit(self, client: redis.Redis, member: str, checks: list[Check]) -> list[Any]:
        keys: list[str] = []
        args: list[str | int] = [member, self.window_ms, self.lease_ms]
        ms_to_midnight = MS_PER_DAY - int(datetime.now(UTC).timestamp() * 1000) % MS_PER_DAY
        for check in checks:
            args += [check.kind, check.limit, check.cost, len(keys) + 1, ms_to_midnight]
            keys += check.keys
        result = await self._admit(keys=keys, args=args, client=client)
        return list(result)

    def _unchecked(
        self, admission: Admission, principal: Principal, model: str, exc: RedisUnavailable
    ) -> Admission:
        if self.config.on_redis_error == "fail_open":
            admission.checked = False
            return admission
        self.metrics.rate_limit_rejections.labels(
            principal.tenant, principal.key_id, model, "redis_unavailable"
        ).inc()
        retry_after = str(self.config.fail_closed_retry_after_s)
        raise GatewayError(
            503,
            f"Rate limits cannot be checked because Redis is unavailable ({exc}); "
            f"retry after {retry_after} s.",
            "service_unavailable",
            code="rate_limiter_unavailable",
            headers={"retry-after": retry_after},
        )

    async def settle(self, admission: Admission, used_tokens: int | None) -> None:
        """Replace the token reservation with ``used_tokens`` and free the concurrency slot; once only.

        ``used_tokens`` None keeps the reservation (usage unknown). A Redis failure here is logged
        through the gate and ignored: the entries expire with their window or lease anyway.
        """
        if admission.settled or not admission.checked or not admission.checks:
            return
        admission.settled = True
        token_checks = [check for check in admission.checks if check.kind in ("T", "D")]
        concurrency = [check for check in admission.checks if check.kind == "C"]
        adjust = used_tokens is not None and used_tokens != admission.reserved_tokens and token_checks
        if not adjust and not concurrency:
            return
        with contextlib.suppress(RedisUnavailable):
            await self.gate.run(
                "ratelimit",
                lambda client: self._run_settle(client, admission, token_checks, concurrency, used_tokens),
            )

    async def _run_settle(
        self,
        client: redis.Redis,
        admission: Admission,
        token_checks: list[Check],
        concurrency: list[Check],
        used_tokens: int | None,
    ) -> None:
        async with client.pipeline(transaction=False) as pipe:
            if used_tokens is not None and used_tokens != admission.reserved_tokens and token_checks:
                windows = [check for check in token_checks if check.kind == "T"]
                days = [check for check in token_checks if check.kind == "D"]
                keys = [key for check in windows for key in check.keys] + [check.keys[0] for check in days]
                args: list[str | int] = [
                    admission.member,
                    admission.reserved_tokens,
                    used_tokens,
                    len(windows),
                ]
                await self._reconcile(keys=keys, args=args, client=pipe)
            for check in concurrency:
                pipe.zrem(check.keys[0], admission.member)
            await pipe.execute()


def _reject_oversized(checks: list[Check]) -> None:
    for check in checks:
        if check.kind in ("T", "D") and check.cost > check.limit:
            raise InvalidRequestError(
                f"This request reserves {check.cost} tokens, more than the {check.name.replace('_', ' ')} "
                f"limit of {check.limit}; lower max_tokens or shorten the messages.",
                param="max_tokens",
            )


def _tightest(checks: list[Check], state: list[int], kind: CheckKind) -> tuple[Check, int, int] | None:
    """Return the check of ``kind`` with the least remaining allowance, its used count and reset ms."""
    best: tuple[Check, int, int] | None = None
    for position, check in enumerate(checks):
        if check.kind != kind:
            continue
        used, reset_ms = state[position * 2], state[position * 2 + 1]
        if best is None or check.limit - used < best[0].limit - best[1]:
            best = (check, used, reset_ms)
    return best


def ratelimit_headers(checks: list[Check], state: list[int]) -> dict[str, str]:
    """Return the x-ratelimit-* headers for the tightest request and token window after admission.

    ``reset`` is the time until the oldest counted request leaves the window, which is when the
    remaining allowance next goes up.
    """
    headers: dict[str, str] = {}
    kinds: tuple[tuple[CheckKind, str], ...] = (("R", "requests"), ("T", "tokens"))
    for kind, suffix in kinds:
        tightest = _tightest(checks, state, kind)
        if tightest is not None:
            check, used, reset_ms = tightest
            headers[f"x-ratelimit-limit-{suffix}"] = str(check.limit)
            headers[f"x-ratelimit-remaining-{suffix}"] = str(max(check.limit - used, 0))
            headers[f"x-ratelimit-reset-{suffix}"] = format_reset(reset_ms)
    return headers


def rejection_headers(checks: list[Check], rejected: Check) -> dict[str, str]:
    """Return x-ratelimit-limit-* for the rejected kind, with nothing remaining."""
    suffix = "tokens" if rejected.kind in ("T", "D") else "requests"
    return {f"x-ratelimit-limit-{suffix}": str(rejected.limit), f"x-ratelimit-remaining-{suffix}": "0"}


def format_reset(milliseconds: int) -> str:
    """Format a duration as OpenAI's headers do: 250ms, 1.5s, 1m30s."""
    if milliseconds < 1000:
        return f"{max(milliseconds, 0)}ms"
    seconds = milliseconds / 1000
    minutes, seconds = divmod(seconds, 60)
    text = f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def reserve_tokens(body: dict[str, Any], completion_estimate: int) -> int:
    """Estimate the tokens a request may use: its prompt (about 4 characters a token) plus its output cap.

    The output cap is ``max_completion_tokens`` or ``max_tokens`` (or the configured estimate)
    times ``n``. The estimate is reconciled with the real usage when the response ends.
    """
    prompt_chars = len(json.dumps(body.get("messages", []), ensure_ascii=False))
    cap = body.get("max_completion_tokens") or body.get("max_tokens")
    completion = cap if isinstance(cap, int) and cap > 0 else completion_estimate
    choices = body.get("n")
    copies = choices if isinstance(choices, int) and choices > 0 else 1
    return math.ceil(prompt_chars / 4) + completion * copies
