"""Text normalisation that remembers where every character came from.

Alignment searches a folded copy of a post and must report offsets in the original text, so each
function here returns the folded text plus, for every folded character, the ``[start, end)`` range of
original characters it came from. A folded match ``[a, b)`` maps back to ``[starts[a], ends[b - 1])``.
"""

from __future__ import annotations

import re
import unicodedata

import attrs

# Typographic marks that writers (and phone keyboards) swap freely for their ASCII forms.
_PUNCTUATION = str.maketrans(
    {
        "\u2018": "'",  # ‘
        "\u2019": "'",  # ’
        "\u201a": "'",  # ‚
        "\u201b": "'",  # ‛
        "\u2032": "'",  # ′
        "\u00b4": "'",  # ´
        "`": "'",
        "\u201c": '"',  # “
        "\u201d": '"',  # ”
        "\u201e": '"',  # „
        "\u201f": '"',  # ‟
        "\u2033": '"',  # ″
        "\u00ab": '"',  # «
        "\u00bb": '"',  # »
        "\u2010": "-",  # ‐
        "\u2011": "-",  # ‑
        "\u2012": "-",  # ‒
        "\u2013": "-",  # –
        "\u2014": "-",  # —
        "\u2015": "-",  # ―
        "\u2212": "-",  # −
    }
)
# Invisible characters that copy-paste adds or removes; they carry no meaning for matching.
_INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad")


@attrs.frozen
class MappedText:
    """Folded text and, per folded character, the original ``[start, end)`` it came from."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Original ``[start, end)`` covering folded characters ``[start, end)`` (``end > start``)."""
        return self.starts[start], self.ends[end - 1]


def _units(text: str) -> list[tuple[int, int]]:
    """Split into a base character plus its combining marks, so NFKC can compose them together."""
    units: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and unicodedata.combining(text[j]):
            j += 1
        units.append((i, j))
        i = j
    return units


def _fold_unit(unit: str) -> str:
    folded = unicodedata.normalize("NFKC", unit).casefold().translate(_PUNCTUATION)
    # casefold can leave text NFKC would change again (e.g. composed forms); one more pass settles it.
    return unicodedata.normalize("NFKC", folded)


def casefold_map(text: str) -> MappedText:
    """Case-folded text with its offset map (nothing else changed)."""
    starts: list[int] = []
    ends: list[int] = []
    parts: list[str] = []
    for i, char in enumerate(text):
        folded = char.casefold()
        parts.append(folded)
        starts.extend([i] * len(folded))
        ends.extend([i + 1] * len(folded))
    return MappedText("".join(parts), tuple(starts), tuple(ends))


def normalize_map(text: str) -> MappedText:
    """Normalised text with its offset map.

    NFKC, case folding, typographic quotes and dashes to ASCII, invisible characters dropped, and
    every run of whitespace (newlines included) made one space.
    """
    starts: list[int] = []
    ends: list[int] = []
    parts: list[str] = []
    cache: dict[str, str] = {}
    in_space = False
    for start, end in _units(text):
        unit = text[start:end]
        if unit.isspace():
            if in_space:
                ends[-1] = end  # widen the single space to cover the whole run
            else:
                parts.append(" ")
                starts.append(start)
                ends.append(end)
                in_space = True
            continue
        if unit in _INVISIBLE:
            continue
        folded = cache.get(unit)
        if folded is None:
            folded = cache[unit] = _fold_unit(unit)
        for char in folded:
            if char.isspace():  # NFKC turns e.g. a no-break space into a space
                if in_space:
                    ends[-1] = end
                    continue
                char = " "
                in_space = True
            else:
                in_space = False
            parts.append(char)
            starts.append(start)
            ends.append(end)
    return MappedText("".join(parts), tuple(starts), tuple(ends))


def normalize_text(text: str) -> str:
    """The normalised form of ``text`` (as ``normalize_map``), trimmed of surrounding spaces."""
    return normalize_map(text).text.strip(" ")


def find_mapped(haystack: MappedText, needle: str) -> tuple[int, int, int] | None:
    """First occurrence of the folded ``needle`` in ``haystack``: ``(start, end, occurrences)`` in original offsets.

    ``needle`` must already be folded the same way as ``haystack``; ``occurrences`` is 1 or 2 (2
    meaning "more than once", which is all a caller needs to warn about ambiguity).
    """
    if not needle:
        return None
    index = haystack.text.find(needle)
    if index < 0:
        return None
    start, end = haystack.original_span(index, index + len(needle))
    occurrences = 2 if haystack.text.find(needle, index + 1) >= 0 else 1
    return start, end, occurrences


# Words too common in first-person posts to tell two sentences apart (pronouns, auxiliaries,
# determiners, prepositions, fillers, negations). Compared after ``normalize_text``.
STOPWORDS: frozenset[str] = frozenset(
    """
    i me my mine myself we us our you your he him his she her they them their it its a an the and or but
    so of to in on at for with by from up down out off over about into than then too also as if that this
    these those there here what which who whom when where why how all any some no not nor is am are was were
    be been being do does did doing done have has had having will would shall should can could may might must
    just really very like much many more most lot lots even still ever only got get gets getting go goes
    going gone im ive id ill its dont cant wont didnt doesnt isnt wasnt arent havent hasnt hadnt couldnt
    wouldnt shouldnt thats theres whats idk tbh lol ok okay yeah oh well kind sort anymore anything
    everything something nothing thing things one ones because since while though although whether again
    never always every each other another own same such now
    """.split()  # noqa: SIM905 - a word list reads better as text
)  # fmt: skip
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
STEM_LENGTH = 5


def content_words(text: str) -> frozenset[str]:
    """The content words of ``text``: normalised, apostrophes dropped, stopwords out, cut to ``STEM_LENGTH`` characters.

    Cutting words to a common prefix is a crude stemmer ("sleeping", "sleep"), and enough for
    telling whether the words of one sentence occur in another.
    """
    words = (w.replace("'", "") for w in _WORD.findall(normalize_text(text)))
    return frozenset(w[:STEM_LENGTH] for w in words if w not in STOPWORDS)


def containment(query: frozenset[str], candidate: frozenset[str]) -> float:
    """Share of ``query``'s content words found in ``candidate`` (0 when ``query`` has none).

    Directional on purpose: a short post clause that holds every content word of an annotation
    scores 1, while a fragment whose few words all occur in a long annotation does not.
    """
    if not query:
        return 0.0
    return len(query & candidate) / len(query)
