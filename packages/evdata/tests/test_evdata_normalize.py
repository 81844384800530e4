"""Normalisation keeps a faithful map back to the original text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from evdata.normalize import casefold_map, find_mapped, normalize_map, normalize_text


def test_typographic_marks_case_and_whitespace() -> None:
    assert normalize_text("  I CAN\u2019T \u201cSLEEP\u201d \u2014 at\u00a0all\n\n\tok\u2026 ") == 'i can\'t "sleep" - at all ok...'


def test_ligatures_and_fullwidth_forms_fold_and_map_back() -> None:
    text = "An \ufb01ne \uff21BC"
    mapped = normalize_map(text)
    assert mapped.text == "an fine abc"
    start, end, _ = find_mapped(mapped, "fine")
    assert text[start:end] == "\ufb01ne"


def test_combining_marks_compose_with_their_base() -> None:
    text = "cafe\u0301 time"
    start, end, _ = find_mapped(normalize_map(text), "caf\u00e9")
    assert (start, end) == (0, 5)


def test_invisible_characters_are_dropped() -> None:
    assert normalize_text("can\u200bnot") == "cannot"


@given(st.text(alphabet="abcdefghij 0123456789.,'-", max_size=80))
def test_identity_on_normalized_text(text: str) -> None:
    text = " ".join(text.split())  # already normal: lowercase ASCII, single spaces
    mapped = normalize_map(text)
    assert mapped.text == text
    assert list(mapped.starts) == list(range(len(text)))
    assert list(mapped.ends) == list(range(1, len(text) + 1))


@given(st.text(max_size=120))
def test_map_is_monotone_and_within_bounds(text: str) -> None:
    for mapped in (normalize_map(text), casefold_map(text)):
        assert len(mapped.starts) == len(mapped.ends) == len(mapped.text)
        for i, (start, end) in enumerate(zip(mapped.starts, mapped.ends)):
            assert 0 <= start < end <= len(text)
            if i:
                assert start >= mapped.starts[i - 1] and end >= mapped.ends[i - 1]


@given(st.text(max_size=60), st.text(max_size=30), st.text(max_size=60))
def test_found_span_normalizes_to_a_superset_of_the_needle(prefix: str, middle: str, suffix: str) -> None:
    text = prefix + middle + suffix
    needle = normalize_text(middle)
    found = find_mapped(normalize_map(text), needle)
    if needle:
        assert found is not None
        start, end, _ = found
        assert needle in normalize_text(text[start:end])
