"""Trivial baselines scored on the same examples, so every run shows how far above them it is."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from evdata.records import QAExample
from evdata.sentences import split_sentences
from evtrain.metrics import squad_scores

if TYPE_CHECKING:
    from evfeatures.decode import Decision

# Words a keyword matcher would look for; deliberately simple (this is a baseline).
SYMPTOM_WORDS: dict[str, tuple[str, ...]] = {
    "DEPRESSED_MOOD": ("sad", "empty", "hopeless", "depressed", "cry", "crying", "down", "miserable", "numb"),
    "ANHEDONIA": ("interest", "enjoy", "fun", "pleasure", "hobbies", "care", "motivation", "pointless"),
    "APPETITE_CHANGE": ("eat", "eating", "appetite", "food", "weight", "hungry", "meals", "lost"),
    "SLEEP_ISSUES": ("sleep", "insomnia", "awake", "night", "nights", "bed", "tired", "oversleep"),
    "PSYCHOMOTOR": ("restless", "slow", "slowed", "pace", "fidget", "sluggish", "moving"),
    "FATIGUE": ("tired", "exhausted", "energy", "fatigue", "drained", "worn"),
    "WORTHLESSNESS": ("worthless", "guilt", "guilty", "failure", "useless", "burden", "hate", "blame"),
    "COGNITIVE_ISSUES": ("focus", "concentrate", "think", "forget", "decide", "decisions", "fog", "memory"),
    "SUICIDAL_THOUGHTS": ("die", "dying", "suicide", "kill", "end", "dead", "death", "disappear"),
}
_ALL_WORDS = tuple(sorted({w for words in SYMPTOM_WORDS.values() for w in words}))
_WORD = re.compile(r"[a-z']+")


def first_sentence(context: str) -> str:
    """The post's first sentence."""
    spans = split_sentences(context)
    return context[spans[0][0] : spans[0][1]] if spans else ""


def keyword_span(context: str, symptom: str = "") -> tuple[int, int, int] | None:
    """``(start, end, count)`` of the sentence with the most symptom words (of ``symptom``, or of any symptom); first on ties.

    None when the context has no sentence; ``count`` is 0 when no sentence holds a symptom word.
    """
    words = set(SYMPTOM_WORDS.get(symptom, _ALL_WORDS))
    best: tuple[int, int, int] | None = None
    for s, e in split_sentences(context):
        count = sum(1 for w in _WORD.findall(context[s:e].lower()) if w in words)
        if best is None or count > best[2]:
            best = (s, e, count)
    return best


def keyword_sentence(context: str, symptom: str = "") -> str:
    """The sentence with the most symptom words (of ``symptom``, or of any symptom); first on ties."""
    span = keyword_span(context, symptom)
    return context[span[0] : span[1]] if span else ""


def keyword_decisions(examples: Sequence[QAExample]) -> tuple[Decision, ...]:
    """The keyword baseline as presence decisions: present when the post holds a word of the asked symptom.

    A present example reports one span, the sentence with the most such words (``keyword_span``),
    scored by that count; ``margin`` is the count too (0 when absent), not a logit difference. In
    ``empty`` mode (no symptom asked) the words of every symptom count; a label outside DSM-5's
    nine (``SPECIAL_CASE``) has no words, so it is always absent. The decisions score like the
    model's (``evtrain.metrics.decision_scores``), on the same rows, no-answer examples included.
    """
    # Imported here: evfeatures.decode brings torch, and scoring baselines needs none.
    from evfeatures.decode import Decision

    decisions = []
    for example in examples:
        if example.symptom and example.symptom not in SYMPTOM_WORDS:
            decisions.append(Decision(example.id, False, 0.0))
            continue
        span = keyword_span(example.context, example.symptom)
        if span is None or span[2] == 0:
            decisions.append(Decision(example.id, False, 0.0))
            continue
        start, end, count = span
        decisions.append(Decision(example.id, True, float(count), ((example.context[start:end], start, end, float(count)),)))
    return tuple(decisions)


def baseline_scores(examples: Sequence[QAExample]) -> dict[str, dict[str, float]]:
    """SQuAD scores of the first-sentence and keyword-sentence baselines on ``examples``."""
    golds = {ex.id: [a.text for a in ex.answers] for ex in examples}
    return {
        "first_sentence": squad_scores({ex.id: first_sentence(ex.context) for ex in examples}, golds),
        "keyword_sentence": squad_scores({ex.id: keyword_sentence(ex.context, ex.symptom) for ex in examples}, golds),
    }


def first_sentence_decisions(examples: Sequence[QAExample]) -> tuple[Decision, ...]:
    """The first-sentence baseline as decisions: always present, its one span the post's first sentence."""
    from evfeatures.decode import Decision

    decisions = []
    for example in examples:
        spans = split_sentences(example.context)
        if not spans:
            decisions.append(Decision(example.id, False, 0.0))
            continue
        start, end = spans[0]
        decisions.append(Decision(example.id, True, 0.0, ((example.context[start:end], start, end, 0.0),)))
    return tuple(decisions)


def baseline_decisions(examples: Sequence[QAExample]) -> dict[str, tuple[Decision, ...]]:
    """Every baseline's presence decisions, keyed by name (scored with ``evtrain.metrics.decision_scores``)."""
    return {"first_sentence": first_sentence_decisions(examples), "keyword_sentence": keyword_decisions(examples)}
