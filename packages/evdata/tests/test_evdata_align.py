"""Alignment cascade: properties of the substring steps, and the fuzzy and semantic steps' rules."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from evdata.align import METHODS, SentenceSimilarity, align_annotation, align_corpus
from evdata.normalize import normalize_text
from evdata.records import Annotation, Corpus, Post
from evdata.sentences import split_sentences
from evdata.settings import DataSettings

SETTINGS = DataSettings()

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéüøñÉÜ"
word = st.text(alphabet=LETTERS + ",.!?-'\"", min_size=1, max_size=8).filter(lambda w: any(c.isalpha() for c in w))
# Surrounding text from a disjoint alphabet, so the sentence can only occur where it was inserted.
filler_word = st.text(alphabet="0123456789#%+=", min_size=1, max_size=6)
spaces = st.sampled_from([" ", "  ", "\n", "\t", "\u00a0", " \n "])


def _with_spaces(draw: st.DrawFn, words: Sequence[str]) -> str:
    return "".join(w + (draw(spaces) if i < len(words) - 1 else "") for i, w in enumerate(words))


@st.composite
def post_with_sentence(draw: st.DrawFn) -> tuple[str, str, int]:
    """(post, sentence as it appears in the post, its offset)."""
    sentence = _with_spaces(draw, draw(st.lists(word, min_size=1, max_size=8)))
    prefix = _with_spaces(draw, draw(st.lists(filler_word, max_size=6)))
    suffix = _with_spaces(draw, draw(st.lists(filler_word, max_size=6)))
    prefix = prefix + draw(spaces) if prefix else ""
    suffix = draw(spaces) + suffix if suffix else ""
    return prefix + sentence + suffix, sentence, len(prefix)


def _swap_quotes(text: str) -> str:
    return text.replace("'", "\u2019").replace('"', "\u201c").replace("-", "\u2013")


@given(post_with_sentence(), st.sampled_from(["same", "upper", "lower", "swapcase"]), st.booleans(), st.booleans())
def test_inserted_sentence_is_found_at_its_offset(case: tuple[str, str, int], change_case: str, respace: bool, requote: bool) -> None:
    post, sentence, offset = case
    annotation = sentence if change_case == "same" else getattr(sentence, change_case)()
    if respace:
        annotation = "  " + " \n ".join(annotation.split()) + "\t"
    if requote:
        annotation = _swap_quotes(annotation)
    span, method, score = align_annotation(post, annotation, SETTINGS)
    assert span is not None, (post, annotation)
    assert method in ("exact", "casefold", "normalized")
    assert (span.start, span.end) == (offset, offset + len(sentence))
    assert score == 1.0


@given(post_with_sentence())
def test_typographic_post_and_ascii_annotation(case: tuple[str, str, int]) -> None:
    post, sentence, offset = case
    span, _, _ = align_annotation(_swap_quotes(post), sentence, SETTINGS)
    assert span is not None and (span.start, span.end) == (offset, offset + len(sentence))


@given(st.text(min_size=0, max_size=200), st.text(min_size=0, max_size=60))
def test_every_found_span_really_occurs(post: str, annotation: str) -> None:
    span, method, _ = align_annotation(post, annotation, SETTINGS)
    if span is None:
        assert method == "unaligned"
        return
    assert 0 <= span.start < span.end <= len(post)
    found = post[span.start : span.end]
    if method == "exact":
        assert found == annotation.strip()
    elif method == "casefold":
        assert found.casefold() == annotation.strip().casefold()
    elif method == "normalized":
        assert normalize_text(annotation) in normalize_text(found)
    else:
        sentences = split_sentences(post)
        assert span.start in {s for s, _ in sentences} and span.end in {e for _, e in sentences}


@given(st.text(min_size=1, max_size=200))
def test_identity_maps_to_itself(post: str) -> None:
    assume(post.strip())
    span, method, _ = align_annotation(post, post, SETTINGS)
    start = len(post) - len(post.lstrip())
    assert method == "exact" and span is not None
    assert (span.start, span.end) == (start, start + len(post.strip()))


@given(post_with_sentence())
def test_substring_found_after_a_sentence_inserted_twice_is_the_first(case: tuple[str, str, int]) -> None:
    post, sentence, offset = case
    span, _, _ = align_annotation(post + " " + sentence, sentence.upper(), SETTINGS)
    assert span is not None and span.start == offset


# --- fuzzy ---------------------------------------------------------------------------------------

POST = "I moved here in May. I can't fall asleep until 4am no matter what I try. My cat is fine."


def test_fuzzy_returns_the_whole_post_sentence() -> None:
    span, method, score = align_annotation(POST, "I cant fall asleep untill 4am no matter what I try", SETTINGS)
    assert method == "fuzzy" and span is not None
    assert POST[span.start : span.end] == "I can't fall asleep until 4am no matter what I try."
    assert 0.9 <= score < 1.0


def test_fuzzy_below_threshold_stays_unaligned() -> None:
    span, method, score = align_annotation(POST, "I never sleep before the sun rises", SETTINGS)
    assert span is None and method == "unaligned" and score < 0.9


def test_fuzzy_matches_a_run_of_sentences_for_a_multi_sentence_annotation() -> None:
    post = "Hello all. I cant sleep. I wake at 3am every night. Bye."
    span, method, _ = align_annotation(post, "I can't sleep! I wake at 3 am every night.", SETTINGS)
    assert method == "fuzzy" and span is not None
    assert post[span.start : span.end] == "I cant sleep. I wake at 3am every night."


# --- semantic ------------------------------------------------------------------------------------


@attrs.define
class TableSimilarity:
    """A deterministic fake scorer: cosine looked up by (query, candidate), 0.1 otherwise; counts calls."""

    table: dict[tuple[str, str], float]
    calls: list[tuple[tuple[str, ...], tuple[str, ...]]] = attrs.field(factory=list)

    def similarity(self, queries: Sequence[str], candidates: Sequence[str]) -> list[list[float]]:
        self.calls.append((tuple(queries), tuple(candidates)))
        return [[self.table.get((q, c), 0.1) for c in candidates] for q in queries]


SLEEP = "These days I get maybe three hours of sleep, if that."
OTHER = "My sister visited on Sunday."
SEMANTIC_POST = f"Hey. {SLEEP} {OTHER}"
QUERY = "I barely sleep anymore, maybe three hours a night."
SEMANTIC = DataSettings(semantic_threshold=0.6, semantic_margin=0.1)


def test_fake_similarity_implements_the_protocol() -> None:
    assert isinstance(TableSimilarity({}), SentenceSimilarity)


def test_semantic_aligns_the_best_sentence_when_clearly_best() -> None:
    fake = TableSimilarity({(QUERY, SLEEP): 0.81, (QUERY, OTHER): 0.2})
    span, method, score = align_annotation(SEMANTIC_POST, QUERY, SEMANTIC, fake)
    assert method == "semantic" and span is not None
    assert SEMANTIC_POST[span.start : span.end] == SLEEP
    assert score == pytest.approx(0.81)


def test_semantic_leaves_doubtful_matches_unaligned() -> None:
    fake = TableSimilarity({(QUERY, SLEEP): 0.81, (QUERY, OTHER): 0.75})
    span, method, score = align_annotation(SEMANTIC_POST, QUERY, SEMANTIC, fake)
    assert span is None and method == "unaligned" and score == pytest.approx(0.81)


def test_semantic_below_threshold_stays_unaligned() -> None:
    fake = TableSimilarity({(QUERY, SLEEP): 0.55})
    span, method, _ = align_annotation(SEMANTIC_POST, QUERY, SEMANTIC, fake)
    assert span is None and method == "unaligned"


def test_semantic_takes_the_first_of_a_repeated_sentence() -> None:
    post = f"{SLEEP} {OTHER} {SLEEP}"
    fake = TableSimilarity({(QUERY, SLEEP): 0.8})
    span, method, _ = align_annotation(post, QUERY, SEMANTIC, fake)
    assert method == "semantic" and span is not None and (span.start, span.end) == (0, len(SLEEP))


def test_similarity_with_wrong_shape_is_a_clear_error() -> None:
    class Broken:
        def similarity(self, queries: Sequence[str], candidates: Sequence[str]) -> list[list[float]]:
            return [[0.5]]

    with pytest.raises(ValueError, match="expected 1x3"):
        align_annotation(SEMANTIC_POST, QUERY, SEMANTIC, Broken())


def _corpus(rows: list[tuple[str, str, str, int]], posts: dict[str, str]) -> Corpus:
    return Corpus(
        posts=tuple(Post(pid, text) for pid, text in posts.items()),
        annotations=tuple(
            Annotation(pid, sid, text, "SLEEP_ISSUES", status, line=i + 2) for i, (pid, sid, text, status) in enumerate(rows)
        ),
    )


def test_align_corpus_one_similarity_call_per_post_and_rows_in_file_order() -> None:
    corpus = _corpus(
        [
            ("a", "a1", QUERY, 1),
            ("b", "b1", QUERY, 1),
            ("a", "a2", "Sunday was when my sister came round.", 0),
            ("a", "a3", SLEEP, 1),
            ("a", "a4", QUERY, 1),
        ],
        {"a": SEMANTIC_POST, "b": f"{OTHER} {SLEEP}"},
    )
    fake = TableSimilarity({(QUERY, SLEEP): 0.8, ("Sunday was when my sister came round.", OTHER): 0.7})
    result = align_corpus(corpus, SEMANTIC, fake)
    assert [a.annotation.sentence_id for a in result.alignments] == ["a1", "b1", "a2", "a3", "a4"]
    assert [a.method for a in result.alignments] == ["semantic", "semantic", "semantic", "exact", "semantic"]
    # Posts a and b: sentences in one call, then clauses and runs around the promising ones in a
    # second; the exact row needs no call.
    assert [call[0] for call in fake.calls] == [(QUERY, "Sunday was when my sister came round.")] * 2 + [(QUERY,)] * 2
    assert fake.calls[0][0] == (QUERY, "Sunday was when my sister came round.")  # same sentence asked once
    assert result.notes == ()


def test_semantic_step_skipped_without_scorer_or_when_disabled() -> None:
    corpus = _corpus([("a", "a1", QUERY, 1)], {"a": SEMANTIC_POST})
    result = align_corpus(corpus, SEMANTIC)
    assert result.alignments[0].method == "unaligned"
    assert "semantic step skipped: no sentence-similarity scorer" in result.notes
    fake = TableSimilarity({(QUERY, SLEEP): 0.9})
    result = align_corpus(corpus, attrs.evolve(SEMANTIC, use_semantic=False), fake)
    assert fake.calls == [] and result.alignments[0].method == "unaligned"
    assert any("use_semantic is false" in note for note in result.notes)


def test_repeated_sentence_is_noted() -> None:
    corpus = _corpus([("a", "a1", "i cant sleep.", 1)], {"a": "I cant sleep. Really. I cant sleep."})
    result = align_corpus(corpus, SETTINGS)
    alignment = result.alignments[0]
    assert alignment.method == "casefold" and alignment.span is not None and alignment.span.start == 0
    assert "more than once" in alignment.note
    assert any("more than once" in note for note in result.notes)


def test_counts_cover_every_method() -> None:
    corpus = _corpus([("a", "a1", SLEEP, 1), ("a", "a2", "nothing like it", 0)], {"a": SEMANTIC_POST})
    counts = align_corpus(corpus, SETTINGS).counts()
    assert counts == dict.fromkeys(METHODS, 0) | {"exact": 1, "unaligned": 1}
    assert list(counts) == list(METHODS)
