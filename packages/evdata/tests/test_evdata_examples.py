"""QA examples from aligned rows: answers are real substrings, one example per (post, question)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evdata.align import AlignmentResult
from evdata.examples import build_examples, posts_without_evidence
from evdata.records import SYMPTOMS, Alignment, Annotation, Corpus, Post, Span, symptom_question

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


# --- Every question asked: no-answer examples (issue 14) -------------------------------------------------

DSM5 = SYMPTOMS


def test_symptom_mode_with_no_answer_examples_asks_every_post_every_symptom() -> None:
    examples = build_examples(CORPUS, ROWS, "symptom", no_answer_examples=True)
    # SPECIAL_CASE has located evidence (in p1), so every post is asked it too, after the nine.
    labels = (*DSM5, "SPECIAL_CASE")
    assert [e.id for e in examples] == [f"{p}::{s}" for p in ("p1", "p2", "p3") for s in labels]
    by_id = {e.id: e for e in examples}
    assert [a.text for a in by_id["p1::SLEEP_ISSUES"].answers] == ["I can't sleep.", "I am so tired."]
    # FATIGUE in p1 has a status-0 row too, but also evidence: not a hard negative.
    assert by_id["p1::FATIGUE"].has_answer and not by_id["p1::FATIGUE"].hard_negative
    # ANHEDONIA in p1: its only status-1 row did not align. No answer, yet not a negative either.
    anhedonia = by_id["p1::ANHEDONIA"]
    assert not anhedonia.has_answer and anhedonia.unaligned_evidence and anhedonia.answer_unknown and not anhedonia.hard_negative
    # p3 has a status-0 FATIGUE row and nothing else: a hard negative.
    assert by_id["p3::FATIGUE"].hard_negative and not by_id["p3::FATIGUE"].has_answer
    assert by_id["p3::FATIGUE"].question == symptom_question("FATIGUE")
    # Plain negatives: nothing annotated at all.
    plain = by_id["p2::DEPRESSED_MOOD"]
    assert (plain.answers, plain.hard_negative, plain.unaligned_evidence, plain.answer_unknown) == ((), False, False, False)
    assert sum(e.hard_negative for e in examples) == 1
    assert posts_without_evidence(CORPUS, examples) == 2


def test_empty_mode_with_no_answer_examples_makes_every_post_an_example() -> None:
    examples = build_examples(CORPUS, ROWS, "empty", no_answer_examples=True)
    assert [e.id for e in examples] == ["p1", "p2", "p3"]
    p1, p2, p3 = examples
    assert p1.has_answer and p1.unaligned_evidence and not p1.answer_unknown and not p1.hard_negative
    assert not p2.has_answer and not p2.hard_negative
    assert not p3.has_answer and p3.hard_negative
    assert examples[0] == build_examples(CORPUS, ROWS, "empty")[0]


def test_a_label_without_located_evidence_is_not_asked() -> None:
    rows = AlignmentResult(
        (
            _row("p1", "I am so tired.", "FATIGUE", 1, _span("I am so tired.")),
            _row("p1", "unfound", "SPECIAL_CASE", 1, None),
            _row("p3", "Only a distractor.", "OTHER_LABEL", 0, (0, 18)),
        )
    )
    examples = build_examples(CORPUS, rows, "symptom", no_answer_examples=True)
    assert {e.symptom for e in examples} == set(DSM5)
    assert len(examples) == 3 * 9


def test_a_post_without_annotations_still_gets_its_questions() -> None:
    corpus = Corpus(posts=(Post("q", "Just a post."),), annotations=())
    assert [e.id for e in build_examples(corpus, (), "symptom", no_answer_examples=True)] == [f"q::{s}" for s in DSM5]
    assert [e.id for e in build_examples(corpus, (), "empty", no_answer_examples=True)] == ["q"]
    assert build_examples(corpus, (), "symptom") == ()


# A random corpus: posts made of sentences, rows naming random sentences, symptoms, statuses, alignment outcomes.
SENTENCES = ["I can't sleep.", "I feel empty.", "Food tastes of nothing.", "My cat is great.", "I want to disappear.", "Work was ok."]
LABELS = (*DSM5, "SPECIAL_CASE", "OTHER")


@st.composite
def corpora(draw: st.DrawFn) -> tuple[Corpus, tuple[Alignment, ...]]:
    n_posts = draw(st.integers(1, 5))
    posts, rows = [], []
    for k in range(n_posts):
        picked = draw(st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=5))
        text = " ".join(picked)
        posts.append(Post(f"p{k}", text))
        for _ in range(draw(st.integers(0, 6))):
            sentence = draw(st.sampled_from(picked))
            start = text.index(sentence)
            aligned = draw(st.booleans()) or draw(st.booleans())
            rows.append(
                _row(
                    f"p{k}",
                    sentence,
                    draw(st.sampled_from(LABELS)),
                    draw(st.sampled_from([0, 1])),
                    (start, start + len(sentence)) if aligned else None,
                    sentence_id=f"s_{k}_{start}",
                )
            )
    # Rows of a post that is not in the corpus never make examples.
    rows.append(_row("ghost", "I can't sleep.", "GHOST_LABEL", 1, (0, 14)))
    return Corpus(posts=tuple(posts), annotations=()), tuple(draw(st.permutations(rows)))


def _pairs(rows: tuple[Alignment, ...]) -> dict[tuple[str, str], list[Alignment]]:
    by_pair: dict[tuple[str, str], list[Alignment]] = {}
    for row in rows:
        by_pair.setdefault((row.annotation.post_id, row.annotation.symptom), []).append(row)
    return by_pair


@given(corpora())
def test_symptom_mode_properties(corpus_rows) -> None:
    corpus, rows = corpus_rows
    examples = build_examples(corpus, rows, "symptom", no_answer_examples=True)
    pairs = _pairs(rows)
    located = {r.annotation.symptom for r in rows if r.annotation.status == 1 and r.span is not None and r.annotation.post_id != "ghost"}
    labels = [*DSM5, *sorted(located - set(DSM5))]
    # Every post x every label exactly once, in post order then DSM-5 order (extras after, alphabetically).
    assert [e.id for e in examples] == [f"{p.post_id}::{s}" for p in corpus.posts for s in labels]
    for example in examples:
        assert example.context == next(p.text for p in corpus.posts if p.post_id == example.post_id)
        found = pairs.get((example.post_id, example.symptom), [])
        positive = [r for r in found if r.annotation.status == 1]
        aligned = [r for r in positive if r.span is not None]
        # Answers are real substrings, and exactly the distinct located evidence spans.
        for answer in example.answers:
            assert example.context[answer.start : answer.end] == answer.text
        assert [(a.start, a.end) for a in example.answers] == sorted({(r.span.start, r.span.end) for r in aligned})
        # No answer iff no aligned status-1 row.
        assert example.has_answer == bool(aligned)
        # Hard negative iff only status-0 rows.
        assert example.hard_negative == (bool(found) and not positive)
        assert example.unaligned_evidence == any(r.span is None for r in positive)
        assert example.answer_unknown == (bool(positive) and not aligned)
    # Without the flag: exactly the examples with answers, unchanged.
    assert build_examples(corpus, rows, "symptom") == tuple(e for e in examples if e.has_answer)


@given(corpora())
def test_empty_mode_properties(corpus_rows) -> None:
    corpus, rows = corpus_rows
    examples = build_examples(corpus, rows, "empty", no_answer_examples=True)
    assert [e.id for e in examples] == [p.post_id for p in corpus.posts]
    for example in examples:
        found = [r for r in rows if r.annotation.post_id == example.post_id]
        positive = [r for r in found if r.annotation.status == 1]
        aligned = [r for r in positive if r.span is not None]
        for answer in example.answers:
            assert example.context[answer.start : answer.end] == answer.text
        assert example.has_answer == bool(aligned)
        assert example.hard_negative == (bool(found) and not positive)
        assert example.unaligned_evidence == any(r.span is None for r in positive)
    assert build_examples(corpus, rows, "empty") == tuple(e for e in examples if e.has_answer)
    assert posts_without_evidence(corpus, examples) == sum(not e.has_answer for e in examples)
