"""SQuAD metrics: the rules, and agreement with torchmetrics' implementation on many generated pairs."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evtrain.metrics import best_over_golds, normalize_answer, squad_scores, token_f1

WORDS = ["the", "a", "an", "I", "sleep", "barely", "night", "tired", "hours", "three", "sad", "empty", "feel", "Sad!", "night.", "'", "-"]
phrase = st.lists(st.sampled_from(WORDS), min_size=0, max_size=8).map(" ".join)


def test_normalisation_follows_squad_rules():
    assert normalize_answer("  The Cat,  sat!  ") == "cat sat"
    assert normalize_answer("an apple a day") == "apple day"


def test_f1_partial_overlap():
    assert token_f1("I barely sleep", "I barely sleep at night") == pytest.approx(2 * 1.0 * 0.6 / 1.6)
    assert best_over_golds("tired", ["sad", "so tired"]) == (0.0, pytest.approx(2 / 3))


def test_percentages_and_missing_prediction():
    scores = squad_scores({"a": "sleep"}, {"a": ["sleep"], "b": ["tired"]})
    assert scores == {"exact_match": 50.0, "f1": 50.0, "n": 2}


@given(
    st.lists(
        st.tuples(phrase, st.lists(phrase.filter(lambda p: normalize_answer(p) != ""), min_size=1, max_size=3)), min_size=1, max_size=12
    )
)
def test_agrees_with_torchmetrics(pairs):
    from torchmetrics.text import SQuAD

    preds = [{"prediction_text": p, "id": str(i)} for i, (p, _) in enumerate(pairs)]
    target = [{"answers": {"answer_start": [0] * len(g), "text": g}, "id": str(i)} for i, (_, g) in enumerate(pairs)]
    theirs = SQuAD()(preds, target)
    ours = squad_scores({str(i): p for i, (p, _) in enumerate(pairs)}, {str(i): g for i, (_, g) in enumerate(pairs)})
    assert ours["exact_match"] == pytest.approx(float(theirs["exact_match"]), abs=1e-3)
    assert ours["f1"] == pytest.approx(float(theirs["f1"]), abs=1e-3)
