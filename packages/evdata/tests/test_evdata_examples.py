"""QA examples from aligned rows: answers are real substrings, one example per (post, question)."""

from __future__ import annotations

import pytest

from evdata.align import AlignmentResult
from evdata.examples import build_examples, posts_without_evidence
from evdata.records import Alignment, Annotation, Corpus, Post, Span, symptom_question

TEXT = "I can't sleep. I am so tired. I feel worthless. My dog is fine."


def _row(post_id: str, sentence: str, symptom: str, status: int, span: tuple[int, int] | None, sentence_id: str = "") -> Alignment:
    annotation = Annotation(post_id, sentence_id or f"{post_id}_{sentence[:5]}", sentence, symptom, status)
    if span is None:
        return Alignment(annotation, None, "unaligned")
    return Alignment(annotation, Span(span[0], span[1], "exact"), "exact", 1.0)


def _span(sentence: str) -> tuple[int, int]:
    start = TEXT.index(sentence)
    return start, start + len(sentence)


CORPUS = Corpus(posts=(Post("p1", TEXT), Post("p2", "Nothing here."), Post("p3", "Only a distractor.")), annotations=())
ROWS = AlignmentResult(
    (
        _row("p1", "I feel worthless.", "WORTHLESSNESS", 1, _span("I feel worthless.")),
        _row("p1", "I can't sleep.", "SLEEP_ISSUES", 1, _span("I can't sleep.")),
        _row("p1", "I am so tired.", "FATIGUE", 1, _span("I am so tired.")),
        _row("p1", "I am so tired.", "SLEEP_ISSUES", 1, _span("I am so tired.")),  # one sentence, two symptoms
        _row("p1", "i am so tired", "FATIGUE", 1, _span("I am so tired.")),  # same span again: deduplicated
        _row("p1", "My dog is fine.", "FATIGUE", 0, _span("My dog is fine.")),  # status 0: never an answer
        _row("p1", "unfound", "ANHEDONIA", 1, None),  # unaligned: never an answer
        _row("p3", "Only a distractor.", "FATIGUE", 0, (0, 18)),
        _row("p1", "My dog is fine.", "SPECIAL_CASE", 1, _span("My dog is fine.")),
    )
)


def test_empty_mode_one_example_per_post_with_sorted_unique_answers() -> None:
    examples = build_examples(CORPUS, ROWS, "empty")
    assert [e.id for e in examples] == ["p1"]
    example = examples[0]
    assert example.question == "" and example.context == TEXT and example.symptom == ""
    assert [a.text for a in example.answers] == ["I can't sleep.", "I am so tired.", "I feel worthless.", "My dog is fine."]
    for answer in example.answers:
        assert example.context[answer.start : answer.end] == answer.text


def test_symptom_mode_one_example_per_symptom_with_evidence() -> None:
    examples = build_examples(CORPUS, ROWS, "symptom")
    assert [e.id for e in examples] == ["p1::SLEEP_ISSUES", "p1::FATIGUE", "p1::WORTHLESSNESS", "p1::SPECIAL_CASE"]
    by_id = {e.id: e for e in examples}
    assert [a.text for a in by_id["p1::SLEEP_ISSUES"].answers] == ["I can't sleep.", "I am so tired."]
    assert [a.text for a in by_id["p1::FATIGUE"].answers] == ["I am so tired."]
    assert by_id["p1::FATIGUE"].question == symptom_question("FATIGUE")
    assert by_id["p1::SPECIAL_CASE"].question == "special case."
    assert all(e.symptom == e.id.split("::")[1] for e in examples)
    for example in examples:
        for answer in example.answers:
            assert example.context[answer.start : answer.end] == answer.text


def test_posts_without_evidence_are_counted() -> None:
    examples = build_examples(CORPUS, ROWS, "symptom")
    assert posts_without_evidence(CORPUS, examples) == 2


def test_unknown_question_mode() -> None:
    with pytest.raises(ValueError, match="question_mode"):
        build_examples(CORPUS, ROWS, "nope")
