"""The LLM judge scorer: a model, called through the gateway, grades an output against a rubric."""

from __future__ import annotations

import re

from harness.evals.dataset import EvalItem
from harness.evals.scoring import Score, Scorer, ScoringContext

JUDGE_INSTRUCTIONS = (
    "You grade an answer to a question. Use the rubric and the reference answer. Reply with one line "
    "'SCORE: <integer from 0 to {scale_max}>', then one line 'REASON: <one sentence>'."
)
_SCORE_LINE = re.compile(
    r"^\s*\**\s*score\s*\**\s*[:=]\s*\**\s*(-?\d+(?:\.\d+)?)\b", re.IGNORECASE | re.MULTILINE
)
_REASON_LINE = re.compile(r"^\s*reason\s*[:=]\s*(.+)$", re.IGNORECASE | re.MULTILINE)


def judge_messages(rubric: str, scale_max: int, item: EvalItem, output: str) -> list[dict[str, str]]:
    """Return the judge request's messages: instructions and rubric, then question, reference and answer."""
    system = JUDGE_INSTRUCTIONS.format(scale_max=scale_max) + f"\n\nRubric:\n{rubric}"
    user = (
        f"Question:\n{item.question}\n\nReference answer:\n{item.reference_text}\n\n"
        f"Candidate answer:\n{output}"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_judge_answer(answer: str, scale_max: int) -> tuple[float | None, str]:
    """Return the judge's score and reason, or None and why the answer could not be read."""
    match = _SCORE_LINE.search(answer)
    if match is None:
        return None, f"unparseable judge answer (no 'SCORE: N' line): {answer[:120]!r}"
    value = float(match.group(1))
    if not 0 <= value <= scale_max:
        return None, f"judge score {value:g} is outside 0 to {scale_max}: {answer[:120]!r}"
    reason = _REASON_LINE.search(answer)
    return value, reason.group(1).strip() if reason else ""


class LLMJudge(Scorer):
    """Scores value = judge score / scale_max; an unparseable answer is a failure with its reason."""

    type = "llm_judge"
    graded = True

    def __init__(
        self, name: str, rubric: str, model: str | None, scale_max: int, pass_score: float, max_tokens: int
    ) -> None:
        options = {
            "rubric": rubric,
            "model": model,
            "scale_max": scale_max,
            "pass_score": pass_score,
            "max_tokens": max_tokens,
        }
        super().__init__(name, options)
        self.rubric = rubric
        self.model = model
        self.scale_max = scale_max
        self.pass_score = pass_score
        self.max_tokens = max_tokens

    async def score(self, output: str, item: EvalItem, context: ScoringContext) -> Score:
        model = self.model or context.default_model
        if context.complete is None or model is None:
            return Score.of(False, "no gateway to call the judge through")
        messages = judge_messages(self.rubric, self.scale_max, item, output)
        params = {"temperature": 0, "max_tokens": self.max_tokens}
        try:
            answer = await context.complete(messages, model, params)
        except Exception as exc:  # any failed judge call is that item's failure, with its reason
            return Score.of(False, f"judge request failed: {type(exc).__name__}: {exc}")
        value, reason = parse_judge_answer(answer, self.scale_max)
        if value is None:
            return Score(0.0, False, reason)
        passed = value >= self.pass_score
        detail = f"judge score {value:g}/{self.scale_max}" + (f": {reason}" if reason else "")
        return Score(value / self.scale_max, passed, None if passed else detail)
