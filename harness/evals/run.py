"""Send eval items through the gateway, score every output, and record each one.

Requests are plain (not streamed) chat completions, ``concurrency`` at a time, spread over the
gateway replicas in turn. A request that fails gets no output, and every scorer fails it with
the error as its reason. Each output is written as one JSON line to the results file.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from harness.cost.prices import Price
from harness.evals.cache import EvalCache, cache_key
from harness.evals.dataset import EvalItem
from harness.evals.plan import EvalPlan, PlannedDataset
from harness.evals.scoring import Score, Scorer, ScoringContext

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class EvalTarget:
    """The gateway that eval requests go to, and the identity of that target in the eval cache."""

    base_urls: tuple[str, ...]
    api_key: str | None
    model: str
    fingerprint: str
    """A hash that changes when the server behind the model may respond differently (stack, URL)."""


@dataclass
class OutputRecord:
    """One output of one item: the response, its measurements and every scorer's score."""

    dataset: str
    item: str
    repeat: int
    output: str | None
    error: str | None
    latency_s: float | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    from_cache: bool
    gateway_cache: str | None
    scores: dict[str, Score] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["scores"] = {name: asdict(score) for name, score in self.scores.items()}
        return data


@dataclass(frozen=True)
class _Response:
    text: str | None
    error: str | None
    latency_s: float | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    gateway_cache: str | None = None


class EvalRunner:
    """Runs one eval plan against a target, with an optional cache and price."""

    def __init__(
        self, plan: EvalPlan, target: EvalTarget, cache: EvalCache | None, price: Price | None
    ) -> None:
        self.plan = plan
        self.target = target
        self.cache = cache
        self.price = price
        self._urls = itertools.cycle(target.base_urls)

    def run(self, results_file: Path | None) -> list[OutputRecord]:
        """Send and score every item and repeat; write one JSON line per output to ``results_file``."""
        records = asyncio.run(self._run_all())
        if results_file is not None:
            results_file.parent.mkdir(parents=True, exist_ok=True)
            lines = [json.dumps(record.as_json(), ensure_ascii=False) for record in records]
            results_file.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return records

    async def _run_all(self) -> list[OutputRecord]:
        spec = self.plan.spec
        limit = asyncio.Semaphore(spec.concurrency)
        timeout = aiohttp.ClientTimeout(total=spec.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            context = ScoringContext(complete=self._completer(session), default_model=self.target.model)

            async def one(dataset: PlannedDataset, item: EvalItem, repeat: int) -> OutputRecord:
                async with limit:
                    return await self._output(session, context, dataset, item, repeat)

            jobs = [
                one(dataset, item, repeat)
                for dataset in self.plan.datasets
                for item in dataset.items
                for repeat in range(spec.repeats)
            ]
            return list(await asyncio.gather(*jobs))

    def _params(self, repeat: int) -> dict[str, Any]:
        params = self.plan.spec.params.model_dump(exclude_none=True)
        if "seed" in params:
            params["seed"] += repeat
        return params

    async def _output(
        self,
        session: aiohttp.ClientSession,
        context: ScoringContext,
        dataset: PlannedDataset,
        item: EvalItem,
        repeat: int,
    ) -> OutputRecord:
        params = self._params(repeat)
        key = cache_key(item.fingerprint(), self.target.model, params, repeat, self.target.fingerprint)
        entry = self.cache.get(key) if self.cache is not None else None
        if entry is not None:
            response = _Response(entry["output"], None, entry["latency_s"], entry["prompt_tokens"],
                                 entry["completion_tokens"], entry.get("gateway_cache"))  # fmt: skip
        else:
            messages = list(item.messages)
            response = await self._send(session, messages, self.target.model, params)
        record = OutputRecord(
            dataset=dataset.spec.name,
            item=item.id,
            repeat=repeat,
            output=response.text,
            error=response.error,
            latency_s=response.latency_s,
            prompt_tokens=response.prompt_tokens,
            completion_tokens=response.completion_tokens,
            cost_usd=self._cost(response) if entry is None else 0.0,
            from_cache=entry is not None,
            gateway_cache=response.gateway_cache,
        )
        stored_scores: dict[str, Any] = dict(entry.get("scores", {})) if entry else {}
        for scorer in dataset.scorers:
            record.scores[scorer.name] = await self._score(scorer, response, item, context, stored_scores)
        if self.cache is not None and response.error is None:
            self.cache.put(key, _entry(response, stored_scores))
        return record

    async def _score(
        self,
        scorer: Scorer,
        response: _Response,
        item: EvalItem,
        context: ScoringContext,
        stored: dict[str, Any],
    ) -> Score:
        if response.text is None:
            return Score.of(False, f"no output: {response.error}")
        fingerprint = scorer.fingerprint()
        if fingerprint in stored:
            return Score(**stored[fingerprint])
        try:
            score = await scorer.score(response.text, item, context)
        except Exception as exc:  # a scorer that crashes fails this output and leaves the others running
            return Score.unscored(f"scorer {scorer.name} raised {type(exc).__name__}: {exc}")
        if not score.transient:
            stored[fingerprint] = asdict(score)
        return score

    def _cost(self, response: _Response) -> float | None:
        if self.price is None:
            return None
        if response.gateway_cache == "hit":
            return 0.0
        return self.price.cost_usd(response.prompt_tokens, response.completion_tokens)

    # NOTE: judge requests made through this completer are not counted in any dataset's
    # requests, tokens or cost; only the gateway's own metrics show them.
    def _completer(self, session: aiohttp.ClientSession) -> Any:
        async def complete(messages: list[dict[str, Any]], model: str, params: dict[str, Any]) -> str:
            response = await self._send(session, messages, model, params)
            if response.text is None:
                raise RuntimeError(response.error)
            return response.text

        return complete

    async def _send(
        self,
        session: aiohttp.ClientSession,
        messages: Sequence[dict[str, Any]],
        model: str,
        params: dict[str, Any],
    ) -> _Response:
        body = {"model": model, "messages": list(messages), **params, "stream": False}
        headers = {"authorization": f"Bearer {self.target.api_key}"} if self.target.api_key else {}
        url = f"{next(self._urls)}{CHAT_COMPLETIONS_PATH}"
        started = time.perf_counter()
        try:
            async with session.post(url, json=body, headers=headers) as reply:
                payload = await reply.json(content_type=None)
                latency_s = time.perf_counter() - started
                if reply.status != 200:
                    return _Response(None, f"HTTP {reply.status}: {_error_message(payload)}", latency_s)
                return _parse_completion(payload, latency_s, reply.headers.get("x-cache"))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return _Response(None, f"{type(exc).__name__}: {exc}", time.perf_counter() - started)


def _entry(response: _Response, scores: dict[str, Any]) -> dict[str, Any]:
    return {
        "output": response.text,
        "latency_s": response.latency_s,
        "prompt_tokens": response.prompt_tokens,
        "completion_tokens": response.completion_tokens,
        "gateway_cache": response.gateway_cache,
        "scores": scores,
    }


def _error_message(payload: Any) -> str:
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return str(payload["error"].get("message"))
    return str(payload)[:200]


def _parse_completion(payload: Any, latency_s: float, gateway_cache: str | None) -> _Response:
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return _Response(None, f"no choices[0].message.content in {str(payload)[:200]}", latency_s)
    usage = payload.get("usage") or {}
    return _Response(
        text=content if isinstance(content, str) else "",
        error=None,
        latency_s=latency_s,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        gateway_cache=gateway_cache,
    )
