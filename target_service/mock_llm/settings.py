"""Behaviour settings of the mock upstream LLM: output, timing and injected errors."""

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
    error_rate: float = Field(
        default=0.0, ge=0, le=1, description="Fraction of requests that get an HTTP 500 response."
    )
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Chat completions served at once; more wait in a queue, and their timing starts "
        "when they leave it. None serves every request at once.",
    )

    def chunk_due_s(self, index: int) -> float:
        """Return when content chunk ``index`` is due, in seconds after the request arrived."""
        pace_s = self.chunk_tokens / self.tokens_per_s if self.tokens_per_s > 0 else 0.0
        return self.ttft_ms / 1000 + index * pace_s
