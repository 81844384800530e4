"""A sentence splitter for Reddit-style text, returning character spans, and the clauses of a sentence.

The fuzzy and semantic alignment steps compare an annotation with each sentence of its post, and
the matched sentence becomes the answer; so the splitter needs to find sentence ends the way a
reader would in informal text: line breaks, ``.``/``!``/``?`` runs (``!?``, ``?!!``), ellipses that
end a sentence only when a capital follows, lowercase sentence starts, and common abbreviations that
do not end one.
"""

from __future__ import annotations

import itertools
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


# Where a sentence falls apart into clauses: , ; : and dashes, and before conjunctions. A leading
# coordinating conjunction is left out of the clause ("and I feel guilty" -> "I feel guilty");
# subordinating ones stay, as they carry the meaning ("because I'm never hungry").
# Marks: , ; : before a space, a spaced hyphen or double hyphen, an en or em dash (spaced or not).
_CLAUSE_MARK = re.compile(r"\s*[,;:]\s+|\s+-{1,2}\s+|\s*[\u2013\u2014]\s*")
_CONJUNCTION = re.compile(
    r"\s(?=(?:and|but|because|cause|cuz|since|though|although|while|whereas|which|yet|or|then|so(?=\s+(?:i|i'm|i've|i'd|i'll|i’m|i’ve|we|he|she|they|it|my|now|that)\b))\s)",
    re.IGNORECASE,
)
_DROPPED_LEAD = re.compile(r"(?:and|but|so|yet|or)(?:\s+|$)", re.IGNORECASE)
_TRIM = " \t,;:-\u2013\u2014"
# Clause candidates: at least this many words, at most this many pieces joined.
MIN_CLAUSE_WORDS = 3
MAX_CLAUSE_PIECES = 4


def _pieces(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The sentence ``text[start:end]`` cut at clause marks and before conjunctions, trimmed; in order."""
    cuts = {start, end}
    for pattern in (_CLAUSE_MARK, _CONJUNCTION):
        for match in pattern.finditer(text, start, end):
            cuts.add(match.start())
            cuts.add(match.end())
    bounds = sorted(cuts)
    pieces = []
    for a, b in itertools.pairwise(bounds):
        piece = text[a:b]
        lead = len(piece) - len(piece.lstrip(_TRIM))
        a += lead
        dropped = _DROPPED_LEAD.match(text, a, b)
        if dropped:
            a = dropped.end()
        b = a + len(text[a:b].rstrip(_TRIM))  # a piece that was only a conjunction is now empty
        if b > a and _HAS_WORD.search(text, a, b):
            pieces.append((a, b))
    return pieces


def clause_spans(text: str, sentence: tuple[int, int]) -> list[tuple[int, int]]:
    """Clause candidates of one sentence: runs of its pieces (never the whole sentence), as spans of ``text``.

    Each span is a trimmed substring of the sentence holding at least ``MIN_CLAUSE_WORDS`` words; runs
    join up to ``MAX_CLAUSE_PIECES`` adjacent pieces, so a clause cut at an inner "and" is still found
    whole. A sentence with one piece has no clauses.
    """
    start, end = sentence
    pieces = _pieces(text, start, end)
    if len(pieces) < 2:
        return []
    whole = text[start:end].strip(_TRIM)
    spans: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for i in range(len(pieces)):
        for j in range(i, min(len(pieces), i + MAX_CLAUSE_PIECES)):
            span = (pieces[i][0], pieces[j][1])
            piece = text[span[0] : span[1]]
            if span in seen or piece == whole or len(piece.split()) < MIN_CLAUSE_WORDS:
                continue
            seen.add(span)
            spans.append(span)
    return spans
