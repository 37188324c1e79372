"""The LLM judge scorer: a model, called through the gateway, grades an output against a rubric."""

from __future__ import annotations

import re

from harness.evals.dataset import EvalItem
from harness.evals.scoring import NO_REFERENCE, Score, Scorer, ScoringContext

JUDGE_INSTRUCTIONS = (
    "You grade an answer to a question. Use the rubric and the reference answer. Reply with one line "
    "'SCORE: <integer from 0 to {scale_max}>', then one line 'REASON: <one sentence>'."
)
# Any line that starts like a score line, so that a second one (or a malformed one) is caught.
_SCORE_START = re.compile(r"^\W*score\W*[:=]", re.IGNORECASE)
# The only score line read: "SCORE: 7", "SCORE: 7.5" or "SCORE: 7/10", optionally in Markdown bold.
_SCORE_LINE = re.compile(
    r"\s*\**\s*score\s*\**\s*:\s*\**\s*(?P<value>\d+(?:\.\d+)?)(?:\s*/\s*(?P<scale>\d+))?\s*\**\s*",
    re.IGNORECASE,
)
_REASON_LINE = re.compile(r"^\s*reason\s*[:=]\s*(.+)$", re.IGNORECASE | re.MULTILINE)


def judge_messages(rubric: str, scale_max: int, item: EvalItem, output: str) -> list[dict[str, str]]:
    """Return the judge request's messages: instructions and rubric, then question, reference and answer."""
    system = JUDGE_INSTRUCTIONS.format(scale_max=scale_max) + f"\n\nRubric:\n{rubric}"
    user = (
        f"Question:\n{item.question}\n\nReference answer:\n{item.reference_text or ''}\n\n"
        f"Candidate answer:\n{output}"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_judge_answer(answer: str, scale_max: int) -> tuple[float | None, str]:
    """Return the judge's score and reason, or None and why the answer could not be read.

    The answer must have exactly one line that starts with ``SCORE:`` or ``SCORE =`` (any case),
    and on it only ``SCORE: <number>``, optionally followed by ``/<scale_max>``. The number may
    have decimals. A percent sign, a range, words after the number or a second score line make
    the answer unparseable, because each can mean a score other than the number read.
    """
    lines = [line for line in answer.splitlines() if _SCORE_START.match(line)]
    if len(lines) != 1:
        problem = "no 'SCORE: N' line" if not lines else f"{len(lines)} score lines"
        return None, f"unparseable judge answer ({problem}): {answer[:120]!r}"
    match = _SCORE_LINE.fullmatch(lines[0])
    if match is None:
        return None, f"unparseable judge answer (the score line is not 'SCORE: N'): {lines[0][:120]!r}"
    if match["scale"] is not None and int(match["scale"]) != scale_max:
        problem = f"a score out of {match['scale']}, not {scale_max}"
        return None, f"unparseable judge answer ({problem}): {lines[0]!r}"
    value = float(match["value"])
    if value > scale_max:
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
        if item.reference_text is None:
            return Score.of(False, NO_REFERENCE)
        if context.complete is None or model is None:
            return Score.of(False, "no gateway to call the judge through")
        messages = judge_messages(self.rubric, self.scale_max, item, output)
        params = {"temperature": 0, "max_tokens": self.max_tokens}
        try:
            answer = await context.complete(messages, model, params)
        except Exception as exc:  # any failed judge call is that item's failure, with its reason
            return Score.unscored(f"judge request failed: {type(exc).__name__}: {exc}")
        value, reason = parse_judge_answer(answer, self.scale_max)
        if value is None:
            return Score(0.0, False, reason)
        passed = value >= self.pass_score
        detail = f"judge score {value:g}/{self.scale_max}" + (f": {reason}" if reason else "")
        return Score(value / self.scale_max, passed, None if passed else detail)
