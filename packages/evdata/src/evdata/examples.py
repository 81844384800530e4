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


def build_examples(
    corpus: Corpus,
    alignments: AlignmentResult | Iterable[Alignment],
    question_mode: str,
    *,
    no_answer_examples: bool = False,
) -> tuple[QAExample, ...]:
    """Build QA examples from the aligned annotation rows, in post order (then DSM-5 order).

    ``empty``: one example per post; question ``""``; id = post_id. ``symptom``: one example per
    (post, symptom); the question describes the symptom; id = ``"{post_id}::{symptom}"``. Answers
    are the aligned status-1 rows, deduplicated by span and sorted by start, and
    ``context[start:end] == text`` always holds.

    By default only questions with at least one answer become examples; posts without evidence
    yield nothing (``posts_without_evidence`` counts them). With ``no_answer_examples`` the
    annotation is read as exhaustive, as ReDSM5's is, and the unanswered questions become
    examples without answers too:

    - ``empty`` mode: every post is an example.
    - ``symptom`` mode: every post is asked each of the nine DSM-5 symptoms, and each other label
      (such as ``SPECIAL_CASE``) that has located status-1 evidence somewhere in the corpus. Such
      a label is then something the model is taught to answer, and since annotators read every
      post, a post without it is a negative like any other; a label with no located evidence
      anywhere would only add questions that can never be answered, so it is not asked.

    Either way every example carries two flags. ``hard_negative``: the (post, question) has
    status-0 rows (an annotated distractor) and no status-1 row. ``unaligned_evidence``: at least
    one of its status-1 rows could not be located; such a row is not a negative, so an example
    whose status-1 rows all failed to align has no answers but ``answer_unknown`` set, and
    training and scoring should leave it out. In ``empty`` mode the question is the whole post, so
    the flags look at all of the post's rows.
    """
    if question_mode not in ("empty", "symptom"):
        raise ValueError(f"question_mode must be 'empty' or 'symptom', got {question_mode!r}")
    rows = alignments.alignments if isinstance(alignments, AlignmentResult) else tuple(alignments)
    evidence: dict[str, list[Alignment]] = {}
    # Per post: the labels with status-0 rows, and those with status-1 rows that did not align.
    distractors: dict[str, set[str]] = {}
    unaligned: dict[str, set[str]] = {}
    for alignment in rows:
        a = alignment.annotation
        if a.status == 1 and alignment.span is not None:
            evidence.setdefault(a.post_id, []).append(alignment)
        elif a.status == 1:
            unaligned.setdefault(a.post_id, set()).add(a.symptom)
        else:
            distractors.setdefault(a.post_id, set()).add(a.symptom)
    in_corpus = {post.post_id for post in corpus.posts}
    located = {a.annotation.symptom for post_id, found in evidence.items() if post_id in in_corpus for a in found}
    asked = (*SYMPTOMS, *sorted(located - set(SYMPTOMS), key=_symptom_order))
    examples: list[QAExample] = []
    for post in corpus.posts:
        found = evidence.get(post.post_id, [])
        distracted = distractors.get(post.post_id, set())
        missed = unaligned.get(post.post_id, set())
        if question_mode == "empty":
            if found or no_answer_examples:
                examples.append(
                    QAExample(
                        id=post.post_id,
                        post_id=post.post_id,
                        question="",
                        context=post.text,
                        answers=_answers(post.text, found),
                        hard_negative=bool(distracted) and not found and not missed,
                        unaligned_evidence=bool(missed),
                    )
                )
            continue
        by_symptom: dict[str, list[Alignment]] = {}
        for alignment in found:
            by_symptom.setdefault(alignment.annotation.symptom, []).append(alignment)
        symptoms = asked if no_answer_examples else sorted(by_symptom, key=_symptom_order)
        for symptom in symptoms:
            answers = _answers(post.text, by_symptom.get(symptom, ()))
            examples.append(
                QAExample(
                    id=f"{post.post_id}::{symptom}",
                    post_id=post.post_id,
                    question=symptom_question(symptom),
                    context=post.text,
                    answers=answers,
                    symptom=symptom,
                    hard_negative=symptom in distracted and not answers and symptom not in missed,
                    unaligned_evidence=symptom in missed,
                )
            )
    return tuple(examples)


def posts_without_evidence(corpus: Corpus, examples: Iterable[QAExample]) -> int:
    """Number of posts in ``corpus`` that no example with an answer was built from."""
    with_evidence = {example.post_id for example in examples if example.answers}
    return sum(1 for post in corpus.posts if post.post_id not in with_evidence)
