"""Post text with gold evidence and predicted spans marked, at exactly the recorded character offsets.

Spans of different examples overlap freely (a prediction half inside a gold sentence), so marks
cannot nest. The text is cut at every span boundary instead, and each piece says which examples'
gold spans (``data-gold``) and predicted spans (``data-pred``) cover it. The page's script uses
those lists to show only the examples that pass the filters.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import attrs

from evtrain.report.markup import attributes, esc


@attrs.frozen
class Piece:
    """A stretch ``[start, end)`` of the text and the examples whose gold / predicted spans cover it."""

    start: int
    end: int
    gold: tuple[int, ...]
    pred: tuple[int, ...]


def pieces(length: int, gold: Mapping[int, Sequence[tuple[int, int]]], pred: Mapping[int, tuple[int, int]]) -> list[Piece]:
    """Cut ``[0, length)`` at every span boundary; empty spans mark nothing.

    ``gold`` maps an example number to its gold spans, ``pred`` to its predicted span.
    """
    gold_spans = [(k, s, e) for k, spans in gold.items() for s, e in spans if s < e]
    pred_spans = [(k, s, e) for k, (s, e) in pred.items() if s < e]
    cuts = sorted({0, length} | {x for _, s, e in gold_spans + pred_spans for x in (s, e) if 0 <= x <= length})
    out = []
    for a, b in itertools.pairwise(cuts):
        out.append(
            Piece(
                a,
                b,
                tuple(sorted({k for k, s, e in gold_spans if s <= a and b <= e})),
                tuple(sorted({k for k, s, e in pred_spans if s <= a and b <= e})),
            )
        )
    return out


def render_marked(
    text: str,
    gold: Mapping[int, Sequence[tuple[int, int]]],
    pred: Mapping[int, tuple[int, int]],
    labels: Mapping[int, str],
) -> str:
    """``text`` as escaped HTML with a ``<span class="m g|p">`` around every marked piece.

    ``labels`` names each example (its symptom) for the hover title.
    """
    parts = []
    for piece in pieces(len(text), gold, pred):
        chunk = esc(text[piece.start : piece.end])
        if not piece.gold and not piece.pred:
            parts.append(chunk)
            continue
        classes = "m" + (" g" if piece.gold else "") + (" p" if piece.pred else "")
        title = []
        if piece.gold:
            title.append("gold: " + ", ".join(dict.fromkeys(labels.get(k, "") for k in piece.gold)))
        if piece.pred:
            title.append("predicted: " + ", ".join(dict.fromkeys(labels.get(k, "") for k in piece.pred)))
        attrs_html = attributes(
            {
                "class": classes,
                "data-gold": " ".join(map(str, piece.gold)) or None,
                "data-pred": " ".join(map(str, piece.pred)) or None,
                "title": " · ".join(title),
            }
        )
        parts.append(f"<span{attrs_html}>{chunk}</span>")
    return "".join(parts)
