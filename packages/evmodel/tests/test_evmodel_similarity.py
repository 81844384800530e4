"""The sentence-similarity scorer on a tiny encoder: shape, cosine range, caching, batching."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evmodel.loading import ModelNotFoundError
from evmodel.similarity import EncoderSimilarity

SENTENCES = ["I can't sleep at night.", "I feel hopeless.", "My appetite is gone.", "I feel hopeless."]


def test_matrix_shape_and_self_similarity(tiny_bert: Path) -> None:
    scorer = EncoderSimilarity(str(tiny_bert))
    matrix = scorer.similarity(SENTENCES[:2], SENTENCES)
    assert len(matrix) == 2 and all(len(row) == 4 for row in matrix)
    assert matrix[0][0] == pytest.approx(1.0, abs=1e-5)
    assert matrix[1][1] == pytest.approx(1.0, abs=1e-5)
    assert matrix[1][3] == pytest.approx(1.0, abs=1e-5)  # a repeated sentence scores the same
    assert all(-1.0 <= value <= 1.0 for row in matrix for value in row)


def test_each_distinct_string_is_encoded_once_per_call(tiny_bert: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scorer = EncoderSimilarity(str(tiny_bert))
    seen: list[list[str]] = []
    embed = scorer.embed
    monkeypatch.setattr(scorer, "embed", lambda texts: seen.append(list(texts)) or embed(texts))
    scorer.similarity(["a b", "c d", "a b"], ["c d", "e f"])
    assert seen == [["a b", "c d", "e f"]]


def test_batch_size_does_not_change_scores(tiny_bert: Path) -> None:
    big = EncoderSimilarity(str(tiny_bert), batch_size=64).similarity(SENTENCES, SENTENCES)
    small = EncoderSimilarity(str(tiny_bert), batch_size=1).similarity(SENTENCES, SENTENCES)
    torch.testing.assert_close(torch.tensor(big), torch.tensor(small), atol=1e-5, rtol=0)


def test_empty_inputs(tiny_bert: Path) -> None:
    scorer = EncoderSimilarity(str(tiny_bert))
    assert scorer.similarity([], ["x"]) == []
    assert scorer.similarity(["x", "y"], []) == [[], []]


def test_model_loads_lazily(tmp_path: Path) -> None:
    scorer = EncoderSimilarity(str(tmp_path / "not-there"))  # nothing is loaded yet, so no error
    with pytest.raises(ModelNotFoundError):
        scorer.similarity(["a"], ["b"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_scores_on_a_gpu_match_the_cpu_in_fp32(tiny_bert: Path) -> None:
    gpu = EncoderSimilarity(str(tiny_bert), device="cuda").similarity(SENTENCES, SENTENCES)
    cpu = EncoderSimilarity(str(tiny_bert), precision="fp32").similarity(SENTENCES, SENTENCES)
    torch.testing.assert_close(torch.tensor(gpu), torch.tensor(cpu), atol=1e-4, rtol=0)
