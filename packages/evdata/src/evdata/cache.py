"""A disk cache of alignment results, keyed by everything the alignment depends on.

Semantic alignment embeds thousands of post sentences; a cached result makes every later
``invoke data/train/evaluate`` on the same files and settings start at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from evdata.align import AlignmentResult, SentenceSimilarity
from evdata.atomic import atomic_write_text
from evdata.records import Alignment, Corpus, Span
from evdata.settings import DataSettings

log = logging.getLogger("evdata")
# Bump when align.py changes what it returns for the same input.
ALIGN_VERSION = 1


def alignment_key(corpus: Corpus, settings: DataSettings, similarity: SentenceSimilarity | None) -> str | None:
    """A content hash of posts, annotation rows, thresholds and scorer; None when the scorer has no ``cache_key``."""
    scorer = None
    if similarity is not None and settings.use_semantic:
        scorer = getattr(similarity, "cache_key", None)
        if scorer is None:
            return None
    h = hashlib.sha256()
    parts: list[Any] = [
        ALIGN_VERSION,
        scorer,
        [settings.fuzzy_threshold, settings.semantic_threshold, settings.semantic_margin, settings.use_semantic],
    ]
    h.update(json.dumps(parts).encode())
    for p in corpus.posts:
        h.update(json.dumps([p.post_id, p.text]).encode())
    for a in corpus.annotations:
        h.update(json.dumps([a.post_id, a.sentence_id, a.sentence_text, a.symptom, a.status, a.line]).encode())
    return h.hexdigest()[:32]


def load_alignment(path: Path, corpus: Corpus) -> AlignmentResult | None:
    """The cached result for ``corpus`` (None when absent or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = data["alignments"]
        if len(rows) != len(corpus.annotations):
            return None
        alignments = tuple(
            Alignment(annotation=a, span=Span(*r["span"]) if r["span"] else None, method=r["method"], score=r["score"], note=r["note"])
            for a, r in zip(corpus.annotations, rows)
        )
        return AlignmentResult(alignments=alignments, notes=tuple(data["notes"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if path.exists():
            log.warning("ignoring unreadable alignment cache %s: %s", path, exc)
        return None


def save_alignment(path: Path, result: AlignmentResult) -> None:
    """Write ``result`` atomically."""
    rows = [
        {
            "span": [al.span.start, al.span.end, al.span.method, al.span.score] if al.span else None,
            "method": al.method,
            "score": al.score,
            "note": al.note,
        }
        for al in result.alignments
    ]
    atomic_write_text(path, json.dumps({"alignments": rows, "notes": list(result.notes)}))
