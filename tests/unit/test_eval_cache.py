"""The eval cache: what its key covers, and which scores it stores."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from harness import runner
from harness.evals import EvalItem, Score, ScoringContext
from harness.evals.cache import package_digest
from harness.evals.registry import CustomScorer
from harness.evals.run import EvalRunner, _Response
from harness.runner import RunSettings, target_fingerprint
from harness.scenario.model import Scenario
from harness.stack.base import Endpoints

ITEM = EvalItem(id="a", messages=({"role": "user", "content": "q"},), expected="4")
ENDPOINTS = Endpoints(gateway_urls=("http://127.0.0.1:1",), models=("m",))


def scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "version": 1,
            "name": "s",
            "load": {
                "model": "open",
                "rate_per_s": 1,
                "duration": "1s",
                "requests": [{"messages": [{"role": "user", "content": "hi"}]}],
            },
        }
    )


def test_package_digest_follows_files(tmp_path: Path) -> None:
    (tmp_path / "answers.json").write_text('{"q": 1}', encoding="utf-8")
    before = package_digest(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert package_digest(tmp_path) == before
    (tmp_path / "answers.json").write_text('{"q": 2}', encoding="utf-8")
    assert package_digest(tmp_path) != before


def test_target_fingerprint_covers_target_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "answers.json").write_text('{"q": 1}', encoding="utf-8")
    monkeypatch.setattr(runner, "target_service_dir", lambda: tmp_path)
    settings = RunSettings()
    before = target_fingerprint(scenario(), ENDPOINTS, settings)
    (tmp_path / "answers.json").write_text('{"q": 2}', encoding="utf-8")
    assert target_fingerprint(scenario(), ENDPOINTS, settings) != before


def test_target_fingerprint_covers_gateway_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "target_service_dir", lambda: tmp_path)
    settings = RunSettings(backend="docker")
    first = Endpoints(gateway_urls=("http://127.0.0.1:1",), models=("m",), gateway_image="sha256:1")
    second = Endpoints(gateway_urls=("http://127.0.0.1:1",), models=("m",), gateway_image="sha256:2")
    assert target_fingerprint(scenario(), first, settings) != target_fingerprint(scenario(), second, settings)


def test_external_backend_cache_off_by_default() -> None:
    settings = RunSettings(backend="external", target_url="http://127.0.0.1:1")
    assert settings.effective_eval_cache_dir is None
    forced = RunSettings(backend="external", target_url="http://127.0.0.1:1", eval_cache_external=True)
    assert forced.effective_eval_cache_dir == forced.eval_cache_dir


def test_eval_cache_flags_contradict() -> None:
    with pytest.raises(ValueError, match="contradict"):
        RunSettings(eval_cache_dir=None, eval_cache_external=True)


def score_once(scorer: Any, stored: dict[str, Any]) -> Score:
    runner_ = EvalRunner.__new__(EvalRunner)
    response = _Response("4", None, 0.1)
    return asyncio.run(runner_._score(scorer, response, ITEM, ScoringContext(), stored))


def test_scorer_exception_not_stored() -> None:
    def broken(output: str, item: EvalItem) -> bool:
        raise KeyError("missing")

    stored: dict[str, Any] = {}
    result = score_once(CustomScorer("c", broken, {}, "broken", "1"), stored)
    assert not result.passed
    assert stored == {}


def test_crashing_builtin_scorer_fails_item() -> None:
    class Crashing(CustomScorer):
        async def score(self, output: str, item: EvalItem, context: ScoringContext) -> Score:
            raise RuntimeError("boom")

    stored: dict[str, Any] = {}
    result = score_once(Crashing("c", bool, {}, "bool", "1"), stored)
    assert result.reason == "scorer c raised RuntimeError: boom"
    assert stored == {}


def test_passing_score_stored() -> None:
    stored: dict[str, Any] = {}
    score_once(CustomScorer("c", lambda output, item: True, {}, "ok", "1"), stored)
    assert list(stored.values()) == [{"value": 1.0, "passed": True, "reason": None, "transient": False}]
