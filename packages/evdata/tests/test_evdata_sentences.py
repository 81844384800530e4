"""Sentence splitting of Reddit-style text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from evdata.sentences import split_sentences


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


def test_terminal_punctuation_and_lowercase_starts() -> None:
    assert sentences("i cant sleep. i tried everything!? Nothing works?! ok") == [
        "i cant sleep.",
        "i tried everything!?",
        "Nothing works?!",
        "ok",
    ]


def test_newlines_always_end_a_sentence() -> None:
    assert sentences("first line without a period\n\nsecond one\r\n- a list item") == [
        "first line without a period",
        "second one",
        "- a list item",
    ]


def test_ellipsis_ends_a_sentence_only_before_a_capital() -> None:
    assert sentences("I just... don't know. It's fine\u2026 Really.") == ["I just... don't know.", "It's fine\u2026", "Really."]


def test_abbreviations_initials_numbers_and_closing_quotes() -> None:
    text = 'I saw Dr. Smith at 3.30 p.m. today, e.g. for meds. J. K. wrote "so tired." Then left.'
    assert sentences(text) == ["I saw Dr. Smith at 3.30 p.m. today, e.g. for meds.", 'J. K. wrote "so tired."', "Then left."]


def test_numbered_list_marker_does_not_split() -> None:
    assert sentences("1. wake up at 4\n2. cry") == ["1. wake up at 4", "2. cry"]


@given(st.text(max_size=300))
def test_spans_are_ordered_trimmed_and_disjoint(text: str) -> None:
    spans = split_sentences(text)
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(text)
        piece = text[start:end]
        assert piece == piece.strip() and "\n" not in piece and "\r" not in piece
        assert any(c.isalnum() or c == "_" for c in piece)
        previous_end = end
