"""Values that cross package boundaries: posts, annotations, aligned spans, QA examples."""

from __future__ import annotations

import attrs

SYMPTOMS: tuple[str, ...] = (
    "DEPRESSED_MOOD",
    "ANHEDONIA",
    "APPETITE_CHANGE",
    "SLEEP_ISSUES",
    "PSYCHOMOTOR",
    "FATIGUE",
    "WORTHLESSNESS",
    "COGNITIVE_ISSUES",
    "SUICIDAL_THOUGHTS",
)

# Short DSM-5 descriptions used as questions in ``symptom`` mode.
SYMPTOM_QUESTIONS: dict[str, str] = {
    "DEPRESSED_MOOD": "Depressed mood: feeling sad, empty or hopeless most of the day.",
    "ANHEDONIA": "Anhedonia: loss of interest or pleasure in activities.",
    "APPETITE_CHANGE": "Appetite or weight change: eating much more or much less than usual.",
    "SLEEP_ISSUES": "Sleep problems: insomnia or sleeping too much.",
    "PSYCHOMOTOR": "Psychomotor agitation or retardation: restless or slowed down.",
    "FATIGUE": "Fatigue: tiredness or loss of energy.",
    "WORTHLESSNESS": "Worthlessness or excessive guilt.",
    "COGNITIVE_ISSUES": "Cognitive problems: trouble thinking, concentrating or deciding.",
    "SUICIDAL_THOUGHTS": "Suicidal thoughts: thoughts of death or suicide.",
}


def symptom_question(symptom: str) -> str:
    """The question asked for ``symptom`` (symptoms outside DSM-5's nine get a readable fallback)."""
    return SYMPTOM_QUESTIONS.get(symptom, symptom.replace("_", " ").lower() + ".")


@attrs.frozen
class Post:
    """One post: its id, text, and the file line it came from (for error messages)."""

    post_id: str
    text: str
    line: int = 0


@attrs.frozen
class Annotation:
    """One row of annotations.csv."""

    post_id: str
    sentence_id: str
    sentence_text: str
    symptom: str
    status: int
    explanation: str = ""
    line: int = 0


@attrs.frozen
class Span:
    """A character span ``[start, end)`` of a post, and how it was found."""

    start: int
    end: int
    method: str
    """exact | casefold | normalized | fuzzy | semantic"""
    score: float = 1.0


@attrs.frozen
class Alignment:
    """One annotation row and where it sits in its post (``span`` None when unaligned)."""

    annotation: Annotation
    span: Span | None
    method: str
    """exact | casefold | normalized | fuzzy | semantic | unaligned"""
    score: float = 0.0
    note: str = ""
    runner_up: Span | None = None
    """The best candidate elsewhere in the post (fuzzy and similarity steps): what the chosen span had to beat."""
    runner_up_text: str = ""
    """The runner-up's text, so a report reader can judge the hard cases without the post at hand."""
    reason: str = ""
    """Why a row was aligned by similarity, or left unaligned: scores, thresholds, runner-up."""


@attrs.frozen
class Answer:
    """A gold answer: ``context[start:end] == text``."""

    text: str
    start: int
    end: int
    symptom: str = ""
    sentence_id: str = ""
    explanation: str = ""


@attrs.frozen
class QAExample:
    """One extractive-QA example: a (post, question) pair and all its gold answers."""

    id: str
    post_id: str
    question: str
    context: str
    answers: tuple[Answer, ...]
    symptom: str = ""
    """The symptom asked about in ``symptom`` mode; empty in ``empty`` mode."""
    hard_negative: bool = False
    """No evidence, and the annotator looked: the (post, question) has status-0 rows and no status-1 row."""
    unaligned_evidence: bool = False
    """At least one status-1 row of this (post, question) could not be located in the post."""

    @property
    def has_answer(self) -> bool:
        """True when the example has at least one gold answer span."""
        return bool(self.answers)

    @property
    def answer_unknown(self) -> bool:
        """The post holds evidence for this question, but none of it was located: neither positive nor negative.

        Such an example has no answers, yet it is no real "no evidence" example either; training and
        scoring leave it out.
        """
        return self.unaligned_evidence and not self.answers


@attrs.frozen
class Skip:
    """A counted, reported skip: which file, line and field, and why."""

    file: str
    line: int
    field: str
    reason: str


@attrs.frozen
class Corpus:
    """What the readers produced: posts, annotation rows, and every skipped row."""

    posts: tuple[Post, ...]
    annotations: tuple[Annotation, ...]
    skips: tuple[Skip, ...] = ()
    posts_path: str = ""
    annotations_path: str = ""
    synthetic: bool = False


@attrs.frozen
class Split:
    """Post-level split: examples per split name (train/val/test) and the post ids in each."""

    examples: dict[str, tuple[QAExample, ...]]
    post_ids: dict[str, tuple[str, ...]]
