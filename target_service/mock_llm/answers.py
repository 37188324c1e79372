"""The mock's answer table: known questions get a right answer, or a wrong one at a set rate.

A chat request whose last user message matches a question below (after Unicode NFKC,
casefolding and whitespace collapsing) is answered from the table instead of with generated
words. Whether an answer is wrong depends only on the mock's seed, the question and the
request's ``seed`` field, so a run gives the same answers in any order and at any concurrency.
The questions are those of the datasets under scenarios/datasets/. The wrong answers are off by
one (numbers), or invalid JSON, a mistyped field or a wrong value (extraction).

A request in the shape of slogate's LLM judge (a user message with ``Reference answer:`` and
``Candidate answer:`` sections) gets ``SCORE: 10`` when the normalized candidate equals the
reference and ``SCORE: 0`` otherwise, so judge scenarios have ground truth too.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

_WHITESPACE = re.compile(r"\s+")
_JUDGE = re.compile(
    r"Reference answer:\n(?P<reference>.*?)\n\nCandidate answer:\n(?P<candidate>.*)\Z", re.DOTALL
)

# Written together with the datasets; each question is identical to its dataset item's input.
ANSWERS_FILE = Path(__file__).with_name("answers.json")
ANSWERS: dict[str, tuple[str, str]] = {
    question: (answers["right"], answers["wrong"])
    for question, answers in json.loads(ANSWERS_FILE.read_text(encoding="utf-8")).items()
}


def normalized(text: str) -> str:
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


_BY_QUESTION = {normalized(question): answers for question, answers in ANSWERS.items()}


def last_user_text(messages: list[Any]) -> str | None:
    for message in reversed(messages):
        if (
            isinstance(message, dict)
            and message.get("role") == "user"
            and isinstance(message.get("content"), str)
        ):
            return str(message["content"])
    return None


def table_answer(seed: int, wrong_answer_rate: float, body: dict[str, Any]) -> str | None:
    """Return the answer the table gives to this request, or None when it is not a known question."""
    question = last_user_text(body["messages"])
    if question is None:
        return None
    judged = _JUDGE.search(question)
    if judged is not None:
        same = normalized(judged["reference"]) == normalized(judged["candidate"])
        reason = "the answer matches the reference" if same else "the answer differs from the reference"
        return f"SCORE: {10 if same else 0}\nREASON: {reason}"
    answers = _BY_QUESTION.get(normalized(question))
    if answers is None:
        return None
    right, wrong = answers
    return wrong if wrong_draw(seed, normalized(question), body.get("seed")) < wrong_answer_rate else right


def wrong_draw(seed: int, question: str, request_seed: Any) -> float:
    """Return a number in [0, 1) fixed by the mock seed, the question and the request's seed."""
    digest = hashlib.sha256(f"{seed}\n{request_seed}\n{question}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
