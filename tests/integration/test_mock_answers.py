"""The mock's answer table: right answers by default, wrong ones at a patchable, seeded rate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from target_service.mock_llm.answers import ANSWERS
from tests.integration.servers import RunningServer, running_mock

DATASET = Path(__file__).resolve().parents[2] / "scenarios" / "datasets" / "arithmetic.jsonl"
QUESTION = "What is 17 + 25? Answer with the number only."


@pytest.fixture
def mock(tmp_path: Path) -> Iterator[RunningServer]:
    with running_mock("mock-answers", tmp_path, "--seed", "3", "--wrong-answer-rate", "0") as server:
        yield server


def ask(server: RunningServer, question: str, **fields: object) -> str:
    body = {"model": "mock-llm", "messages": [{"role": "user", "content": question}], **fields}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=10.0)
    response.raise_for_status()
    content: str = response.json()["choices"][0]["message"]["content"]
    return content


def set_rate(server: RunningServer, rate: float) -> None:
    httpx.patch(
        f"{server.url}/mock/settings", json={"wrong_answer_rate": rate}, timeout=5.0
    ).raise_for_status()


def test_table_answers_every_dataset_question(mock: RunningServer) -> None:
    for line in DATASET.read_text().splitlines():
        item = json.loads(line)
        assert float(ask(mock, item["input"])) == pytest.approx(item["expected"])


def test_table_matches_normalized_question(mock: RunningServer) -> None:
    assert ask(mock, "  what IS 17 +   25? answer with the number only.") == "42"


def test_unknown_question_gets_generated_words(mock: RunningServer) -> None:
    assert ask(mock, "Tell me a story.") not in {right for right, _ in ANSWERS.values()}


def test_patched_rate_gives_wrong_answers(mock: RunningServer) -> None:
    set_rate(mock, 1.0)
    assert ask(mock, QUESTION) == "43"
    set_rate(mock, 0.0)
    assert ask(mock, QUESTION) == "42"


def test_wrong_answers_repeat_for_same_request(mock: RunningServer) -> None:
    set_rate(mock, 0.5)
    questions = [json.loads(line)["input"] for line in DATASET.read_text().splitlines()]
    first = [ask(mock, question) for question in questions]
    second = [ask(mock, question) for question in reversed(questions)]
    assert first == list(reversed(second))
    wrong = sum(answer != ANSWERS[question][0] for question, answer in zip(questions, first, strict=True))
    assert 5 <= wrong <= 25


def test_judge_prompt_scores_candidate(mock: RunningServer) -> None:
    prompt = "Question:\nq\n\nReference answer:\n42\n\nCandidate answer:\n 42 "
    assert ask(mock, prompt).startswith("SCORE: 10\n")
    assert ask(mock, prompt.replace(" 42 ", "41")).startswith("SCORE: 0\n")


def test_rate_outside_range_rejected(mock: RunningServer) -> None:
    response = httpx.patch(f"{mock.url}/mock/settings", json={"wrong_answer_rate": 1.5}, timeout=5.0)
    assert response.status_code == 400
    assert "wrong_answer_rate" in response.text
