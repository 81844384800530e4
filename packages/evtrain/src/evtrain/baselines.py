"""Trivial baselines scored on the same examples, so every run shows how far above them it is."""

from __future__ import annotations

import re
from collections.abc import Sequence

from evdata.records import QAExample
from evdata.sentences import split_sentences
from evtrain.metrics import squad_scores

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


def keyword_sentence(context: str, symptom: str = "") -> str:
    """The sentence with the most symptom words (of ``symptom``, or of any symptom); first on ties."""
    words = set(SYMPTOM_WORDS.get(symptom, _ALL_WORDS))
    best, best_count = "", -1
    for s, e in split_sentences(context):
        count = sum(1 for w in _WORD.findall(context[s:e].lower()) if w in words)
        if count > best_count:
            best, best_count = context[s:e], count
    return best


def baseline_scores(examples: Sequence[QAExample]) -> dict[str, dict[str, float]]:
    """SQuAD scores of the first-sentence and keyword-sentence baselines on ``examples``."""
    golds = {ex.id: [a.text for a in ex.answers] for ex in examples}
    return {
        "first_sentence": squad_scores({ex.id: first_sentence(ex.context) for ex in examples}, golds),
        "keyword_sentence": squad_scores({ex.id: keyword_sentence(ex.context, ex.symptom) for ex in examples}, golds),
    }
