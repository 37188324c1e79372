"""Behaviour settings of the mock upstream LLM: output, timing and injected failures."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MockSettings(BaseModel):
    """Behaviour of one mock server. The same settings and request always produce the same output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(default=0, description="Seed of the output words and of the injected error sequence.")
    model: str = Field(default="mock-llm", description="The one model name served. Other names get a 404.")
    ttft_ms: float = Field(
        default=0.0, ge=0, description="Time from request arrival to the first content chunk."
    )
    tokens_per_s: float = Field(
        default=0.0, ge=0, description="Output pace after the first token, or 0 for no pacing."
    )
    output_tokens: int = Field(
        default=32, ge=0, description="Tokens per completion unless max_tokens is lower."
    )
    chunk_tokens: int = Field(default=1, ge=1, description="Tokens per streamed content chunk.")
    wrong_answer_rate: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Fraction of answer-table questions answered wrongly; the draw depends on the seed, "
        "the question and the request's seed field.",
    )
    error_rate: float = Field(
        default=0.0, ge=0, le=1, description="Fraction of requests answered with error_status."
    )
    error_status: int = Field(
        default=500, ge=400, le=599, description="HTTP status of injected errors, such as 429, 500 or 503."
    )
    retry_after_s: int | None = Field(
        default=None,
        ge=0,
        description="Retry-After header of injected errors, in whole seconds; None sends none.",
    )
    stall_after_tokens: int | None = Field(
        default=None, ge=0, description="A stream pauses for stall_ms after this many content tokens."
    )
    stall_ms: float = Field(default=0.0, ge=0, description="Length of the mid-stream pause.")
    disconnect_after_tokens: int | None = Field(
        default=None,
        ge=0,
        description="A stream drops its connection after this many content tokens, with no [DONE].",
    )
    split_utf8: bool = Field(
        default=False,
        description="Send each stream event in two network writes, cut inside a multi-byte UTF-8 "
        "character when the event has one.",
    )
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Chat completions served at once; more wait in a queue, and their timing starts "
        "when they leave it. None serves every request at once.",
    )
    precise_timing: bool = Field(
        default=False,
        description="Spend the last 1.2 ms before each due time polling the clock "
        "rather than waiting on a timer: delays then hold within about 0.3 ms at p99 instead of "
        "1 to 3 ms, at the cost of CPU time.",
    )

    def chunk_due_s(self, index: int) -> float:
        """Return when content chunk ``index`` is due, in seconds after the request arrived."""
        pace_s = self.chunk_tokens / self.tokens_per_s if self.tokens_per_s > 0 else 0.0
        return self.ttft_ms / 1000 + index * pace_s
