"""SQuAD-style exact match and token F1, per example the best over all gold answers."""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, strip punctuation, drop the articles a/an/the, collapse whitespace (the SQuAD rules)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall after normalisation."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        # Both empty counts as agreement (SQuAD v2's rule for no-answer).
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    """(exact match, F1) of one prediction: the best score over its gold answers."""
    if not golds:
        golds = [""]
    return max(exact_match(prediction, g) for g in golds), max(token_f1(prediction, g) for g in golds)


def squad_scores(predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Corpus-level ``exact_match`` and ``f1`` as percentages, and ``n``, over the examples in ``golds``.

    An example without a prediction counts as an empty prediction.
    """
    n = len(golds)
    if n == 0:
        return {"exact_match": 0.0, "f1": 0.0, "n": 0}
    em_total = f1_total = 0.0
    for example_id, gold_texts in golds.items():
        em, f1 = best_over_golds(predictions.get(example_id, ""), gold_texts)
        em_total += em
        f1_total += f1
    return {"exact_match": 100.0 * em_total / n, "f1": 100.0 * f1_total / n, "n": n}
