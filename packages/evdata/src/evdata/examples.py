"""Aligned annotation rows -> extractive question-answering examples."""

from __future__ import annotations

from collections.abc import Iterable

from evdata.align import AlignmentResult
from evdata.records import SYMPTOMS, Alignment, Answer, Corpus, QAExample, symptom_question


def _symptom_order(symptom: str) -> tuple[int, str]:
    # DSM-5 order first, then any other label (e.g. SPECIAL_CASE) alphabetically.
    return (SYMPTOMS.index(symptom), "") if symptom in SYMPTOMS else (len(SYMPTOMS), symptom)


def _answers(context: str, alignments: Iterable[Alignment]) -> tuple[Answer, ...]:
    """One answer per distinct span, sorted by start; the first row of a span gives its metadata."""
    by_span: dict[tuple[int, int], Answer] = {}
    for alignment in alignments:
        span = alignment.span
        assert span is not None
        key = (span.start, span.end)
        if key not in by_span:
            a = alignment.annotation
            by_span[key] = Answer(
                text=context[span.start : span.end],
                start=span.start,
                end=span.end,
                symptom=a.symptom,
                sentence_id=a.sentence_id,
                explanation=a.explanation,
            )
    return tuple(by_span[key] for key in sorted(by_span))


def build_examples(corpus: Corpus, alignments: AlignmentResult | Iterable[Alignment], question_mode: str) -> tuple[QAExample, ...]:
    """Build QA examples from the aligned status-1 rows, in post order.

    ``empty``: one example per post with at least one answer; question ``""``; id = post_id.
    ``symptom``: one example per (post, symptom) with at least one answer; the question describes
    the symptom; id = ``"{post_id}::{symptom}"``. Answers are deduplicated by span and sorted by
    start, and ``context[start:end] == text`` always holds. Posts without evidence yield nothing
    (``posts_without_evidence`` counts them).
    """
    if question_mode not in ("empty", "symptom"):
        raise ValueError(f"question_mode must be 'empty' or 'symptom', got {question_mode!r}")
    rows = alignments.alignments if isinstance(alignments, AlignmentResult) else tuple(alignments)
    evidence: dict[str, list[Alignment]] = {}
    for alignment in rows:
        if alignment.annotation.status == 1 and alignment.span is not None:
            evidence.setdefault(alignment.annotation.post_id, []).append(alignment)
    examples: list[QAExample] = []
    for post in corpus.posts:
        found = evidence.get(post.post_id)
        if not found:
            continue
        if question_mode == "empty":
            examples.append(
                QAExample(id=post.post_id, post_id=post.post_id, question="", context=post.text, answers=_answers(post.text, found))
            )
            continue
        by_symptom: dict[str, list[Alignment]] = {}
        for alignment in found:
            by_symptom.setdefault(alignment.annotation.symptom, []).append(alignment)
        for symptom in sorted(by_symptom, key=_symptom_order):
            examples.append(
                QAExample(
                    id=f"{post.post_id}::{symptom}",
                    post_id=post.post_id,
                    question=symptom_question(symptom),
                    context=post.text,
                    answers=_answers(post.text, by_symptom[symptom]),
                    symptom=symptom,
                )
            )
    return tuple(examples)


def posts_without_evidence(corpus: Corpus, examples: Iterable[QAExample]) -> int:
    """Number of posts in ``corpus`` that no example was built from."""
    with_examples = {example.post_id for example in examples}
    return sum(1 for post in corpus.posts if post.post_id not in with_examples)
