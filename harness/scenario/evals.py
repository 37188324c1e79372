"""Scenario settings of the eval section: datasets sent through the gateway, scorers and their gates.

The models only check the YAML's shape. The loader then reads each dataset (relative to the
scenario file) and builds each scorer. So a bad JSONL line, an invalid regex or JSON Schema, an
unimportable custom scorer or a missing embedding model is a load error too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from harness.scenario.base import GateMode, Name, StrictModel
from harness.scenario.units import Percent


class ScorerBase(StrictModel):
    """Fields every scorer has: its name, weight and thresholds."""

    name: Name | None = Field(
        None, description="Name in reports; default: the dataset name and the type, such as math.numeric."
    )
    weight: float = Field(1.0, ge=0, description="Weight in the eval's weighted overall score.")
    min_pass_rate: Percent | None = Field(
        None, description="The share of items that must pass, judged on the interval's lower bound."
    )
    min_mean: float | None = Field(
        None,
        ge=0,
        le=1,
        description="The mean score (0 to 1) required, judged on the interval's lower bound.",
    )
    gate: GateMode | None = Field(None, description="block or warn; default is the eval section's gate.")


class Normalization(StrictModel):
    """How outputs and expected answers are normalized before they are compared."""

    case: bool = Field(True, description="Compare case-insensitively (Unicode casefold).")
    whitespace: bool = Field(True, description="Strip both ends and collapse inner runs of whitespace.")
    nfkc: bool = Field(
        True, description="Apply Unicode NFKC, so compatibility forms (ﬁ, ①, full-width) match."
    )


class ExactMatchScorer(ScorerBase):
    """The normalized output equals the item's expected answer."""

    type: Literal["exact_match"]
    normalize: Normalization = Field(default_factory=Normalization)


class ContainsScorer(ScorerBase):
    """The output contains every given text (default: the item's expected answer)."""

    type: Literal["contains"]
    values: list[str] | None = Field(None, description="Texts that must all occur; default: expected.")
    normalize: Normalization = Field(default_factory=Normalization)


class NotContainsScorer(ScorerBase):
    """The output contains none of the given texts."""

    type: Literal["not_contains"]
    values: list[str] = Field(min_length=1, description="Texts that must not occur.")
    normalize: Normalization = Field(default_factory=Normalization)


class RegexScorer(ScorerBase):
    """The output matches a regular expression (Python ``re`` syntax)."""

    type: Literal["regex"]
    pattern: str = Field(min_length=1)
    full_match: bool = Field(False, description="Match the whole stripped output, not a part of it.")
    ignore_case: bool = False


class JsonValidScorer(ScorerBase):
    """The output is a JSON document."""

    type: Literal["json_valid"]
    strip_code_fence: bool = Field(True, description="Accept a document inside one ``` fence.")


class JsonSchemaScorer(ScorerBase):
    """The output is a JSON document valid against a JSON Schema (draft 2020-12)."""

    type: Literal["json_schema"]
    json_schema: dict[str, Any] | None = Field(
        None, alias="schema", description="The schema inline; give this or schema_file."
    )
    schema_file: str | None = Field(None, description="A JSON Schema file, relative to the scenario file.")
    strip_code_fence: bool = True

    @model_validator(mode="after")
    def _one_schema(self) -> JsonSchemaScorer:
        if (self.json_schema is None) == (self.schema_file is None):
            raise ValueError("give exactly one of schema and schema_file")
        return self


class JsonMatchScorer(ScorerBase):
    """The output is a JSON document equal to the item's expected value (key order ignored)."""

    type: Literal["json_match"]
    strip_code_fence: bool = True


class NumericScorer(ScorerBase):
    """The first number in the output is within a tolerance of the expected number.

    It passes when ``|output - expected| <= max(abs_tol, rel_tol * |expected|)``.
    """

    type: Literal["numeric"]
    abs_tol: float = Field(0.0, ge=0, description="Absolute tolerance, in the answer's unit.")
    rel_tol: float = Field(0.0, ge=0, description="Tolerance as a fraction of the expected value.")


class EmbeddingScorer(ScorerBase):
    """Cosine similarity of output and reference embeddings (all-MiniLM-L6-v2, loaded offline)."""

    type: Literal["embedding"]
    min_similarity: float = Field(0.8, ge=-1, le=1, description="An item passes at this similarity or above.")


class JudgeScorer(ScorerBase):
    """An LLM, called through the gateway, grades the output against a rubric."""

    type: Literal["llm_judge"]
    rubric: str = Field(min_length=1, description="What a good answer is; sent to the judge.")
    model: Name | None = Field(None, description="The judge's model alias; default: the eval's model.")
    scale_max: int = Field(10, ge=1, le=100, description="The judge scores from 0 to scale_max.")
    pass_score: float = Field(7, ge=0, description="An item passes at this judge score or above.")
    max_tokens: int = Field(128, ge=1, le=4096, description="max_tokens of the judge request.")

    @model_validator(mode="after")
    def _pass_score_on_scale(self) -> JudgeScorer:
        if self.pass_score > self.scale_max:
            raise ValueError(f"pass_score {self.pass_score:g} is above scale_max {self.scale_max}")
        return self


class CustomScorer(ScorerBase):
    """A Python callable: a registered name, a ``slogate.scorers`` entry point, or a dotted path."""

    type: Literal["custom"]
    function: str = Field(
        min_length=1,
        description="A name from register_scorer, the pytest_slogate_eval_scorers hook or the "
        "slogate.scorers entry points; else module:function or module.function.",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the callable.")
    version: str = Field("1", description="Change it when the function changes, to invalidate cached scores.")


AnyScorer = Annotated[
    Annotated[ExactMatchScorer, Tag("exact_match")]
    | Annotated[ContainsScorer, Tag("contains")]
    | Annotated[NotContainsScorer, Tag("not_contains")]
    | Annotated[RegexScorer, Tag("regex")]
    | Annotated[JsonValidScorer, Tag("json_valid")]
    | Annotated[JsonSchemaScorer, Tag("json_schema")]
    | Annotated[JsonMatchScorer, Tag("json_match")]
    | Annotated[NumericScorer, Tag("numeric")]
    | Annotated[EmbeddingScorer, Tag("embedding")]
    | Annotated[JudgeScorer, Tag("llm_judge")]
    | Annotated[CustomScorer, Tag("custom")],
    Discriminator("type"),
]
SCORER_TYPES = (
    "exact_match", "contains", "not_contains", "regex", "json_valid", "json_schema", "json_match",
    "numeric", "embedding", "llm_judge", "custom",
)  # fmt: skip


class DatasetSpec(StrictModel):
    """One JSONL dataset and the scorers that grade its items."""

    name: Name
    path: str = Field(min_length=1, description="JSONL file, relative to the scenario file.")
    scorers: list[AnyScorer] = Field(min_length=1)


class SamplingSpec(StrictModel):
    """Sampling parameters sent with every eval request."""

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=100_000)
    seed: int | None = Field(None, description="Sent as is on the first repeat, plus r on repeat r.")
    stop: list[str] | None = None


class EvalSpec(StrictModel):
    """Datasets sent through the gateway after the load, scored, and gated on their results."""

    datasets: list[DatasetSpec] = Field(min_length=1)
    model: Name | None = Field(
        None, description="Model alias of the eval requests; default: the stack's first."
    )
    tenant: Name | None = Field(None, description="Tenant whose API key sends them; default: the first.")
    params: SamplingSpec = Field(default_factory=SamplingSpec)
    concurrency: int = Field(4, ge=1, le=256, description="Eval requests in flight at once.")
    repeats: int = Field(1, ge=1, le=100, description="How often each item is sent and scored.")
    timeout: float = Field(60.0, gt=0, le=3600, description="Seconds one eval request may take.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence level of every interval.")
    resamples: int = Field(2000, ge=100, le=100_000, description="Bootstrap resamples per interval.")
    seed: int = Field(0, description="Seed of the bootstrap, so intervals are reproducible.")
    min_overall_score: float | None = Field(
        None, ge=0, le=1, description="Threshold on the weighted overall score (0 to 1)."
    )
    baseline_tolerance: float = Field(
        0.02, ge=0, le=1, description="A regression needs the interval below the baseline by more than this."
    )
    gate: GateMode | None = Field(None, description="block or warn; default is the scenario's gate.")

    @field_validator("datasets")
    @classmethod
    def _unique_names(cls, datasets: list[DatasetSpec]) -> list[DatasetSpec]:
        names = [dataset.name for dataset in datasets]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"dataset names must be unique; repeated: {', '.join(repeated)}")
        return datasets

    def scorer_names(self) -> list[tuple[str, int, int]]:
        """Return each scorer's report name with its dataset and scorer positions."""
        names = []
        for dataset_position, dataset in enumerate(self.datasets):
            for scorer_position, scorer in enumerate(dataset.scorers):
                name = scorer.name or f"{dataset.name}.{scorer.type}"
                names.append((name, dataset_position, scorer_position))
        return names
