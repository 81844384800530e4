"""A sentence splitter for Reddit-style text, returning character spans.

The fuzzy and semantic alignment steps compare an annotation with each sentence of its post, and
the matched sentence becomes the answer; so the splitter needs to find sentence ends the way a
reader would in informal text: line breaks, ``.``/``!``/``?`` runs (``!?``, ``?!!``), ellipses that
end a sentence only when a capital follows, lowercase sentence starts, and common abbreviations that
do not end one.
"""

from __future__ import annotations

import re

# Words that are usually followed by a period without ending the sentence (compared lowercased,
# without the final period).
ABBREVIATIONS: frozenset[str] = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "eg", "ie", "approx",
        "a.m", "p.m", "am", "pm", "u.s", "u.k", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
        "sept", "oct", "nov", "dec", "mon", "tue", "wed", "thu", "fri", "sat", "sun", "no", "fig", "ca",
        "lbs", "lb", "oz", "mins", "hrs", "min", "hr", "appt", "dept", "govt", "ft", "yr", "yrs", "mg",
    }
)  # fmt: skip

_LINE = re.compile(r"[^\r\n\u2028\u2029]+")
# A run of terminal punctuation, optional closing quotes/brackets, then whitespace before the next word.
_BOUNDARY = re.compile(r"(?P<mark>[.!?\u2026]+)(?P<close>[\"'\u201d\u2019)\]*_]*)(?=\s+\S)")
_HAS_WORD = re.compile(r"\w")


def _ends_sentence(line: str, match: re.Match[str]) -> bool:
    mark = match.group("mark")
    next_char = line[match.end() :].lstrip()[:1]
    if "!" in mark or "?" in mark:
        return True
    if mark == ".":
        before = line[: match.start()].rsplit(None, 1)
        token = before[-1] if before else ""
        bare = token.lstrip("(\"'").lower()
        if bare in ABBREVIATIONS:
            return False
        if len(bare) == 1 and bare.isalpha() and token[-1:].isupper():
            return False  # an initial, as in "J. K. Rowling"
        # A number that starts the line is a list marker ("1. woke up at 4"), not a sentence end.
        return not (token.isdigit() and len(before) == 1)
    # Two or more periods or an ellipsis character: often a pause mid-sentence in informal writing.
    return next_char.isupper() or next_char.isdigit()


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the sentences of ``text``, in order, trimmed of whitespace.

    Spans never overlap, never contain a line break, and each holds at least one word character.
    """
    spans: list[tuple[int, int]] = []
    for line_match in _LINE.finditer(text):
        line = line_match.group()
        offset = line_match.start()
        cursor = 0
        for match in _BOUNDARY.finditer(line):
            if _ends_sentence(line, match):
                _add_span(spans, line, offset, cursor, match.end())
                cursor = match.end()
        _add_span(spans, line, offset, cursor, len(line))
    return spans


def _add_span(spans: list[tuple[int, int]], line: str, offset: int, start: int, end: int) -> None:
    piece = line[start:end]
    stripped = piece.strip()
    if not stripped or not _HAS_WORD.search(stripped):
        return
    lead = len(piece) - len(piece.lstrip())
    start += lead
    spans.append((offset + start, offset + start + len(stripped)))
