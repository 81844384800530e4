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

import attrs

from evdata.align import AlignmentResult, SentenceSimilarity
from evdata.config import RecordError, read_record, write_record
from evdata.records import Alignment, Corpus, Span
from evdata.settings import ALIGNMENT_FIELDS, DataSettings

log = logging.getLogger("evdata")
# Bump when align.py changes what it returns for the same input.
ALIGN_VERSION = 3


def alignment_key(corpus: Corpus, settings: DataSettings, similarity: SentenceSimilarity | None) -> str | None:
    """A content hash of posts, annotation rows, alignment settings (``ALIGNMENT_FIELDS``) and scorer; None when the scorer has no ``cache_key``."""
    scorer = None
    if similarity is not None and settings.use_semantic:
        scorer = getattr(similarity, "cache_key", None)
        if scorer is None:
            return None
    h = hashlib.sha256()
    parts: list[Any] = [
        ALIGN_VERSION,
        scorer,
        {name: getattr(settings, name) for name in ALIGNMENT_FIELDS},
    ]
    h.update(json.dumps(parts).encode())
    for p in corpus.posts:
        h.update(json.dumps([p.post_id, p.text]).encode())
    for a in corpus.annotations:
        h.update(json.dumps([a.post_id, a.sentence_id, a.sentence_text, a.symptom, a.status, a.line]).encode())
    return h.hexdigest()[:32]


@attrs.frozen
class CachedRow:
    """What the cache keeps of one ``Alignment`` (its annotation row is the corpus's own, matched by position)."""

    span: Span | None
    method: str
    score: float
    note: str
    runner_up: Span | None
    runner_up_text: str
    reason: str


@attrs.frozen
class AlignmentCache:
    """A cache file: one row per annotation, in file order, and the run's notes."""

    rows: list[CachedRow]
    notes: list[str]


def load_alignment(path: Path, corpus: Corpus) -> AlignmentResult | None:
    """The cached result for ``corpus`` (None when absent, unreadable or not of this version's shape)."""
    if not path.is_file():
        return None
    try:
        cache = read_record(path, AlignmentCache)
    except RecordError as exc:
        log.warning("ignoring unreadable alignment cache: %s", exc)
        return None
    if len(cache.rows) != len(corpus.annotations):
        return None
    alignments = tuple(
        Alignment(
            annotation=a,
            span=r.span,
            method=r.method,
            score=r.score,
            note=r.note,
            runner_up=r.runner_up,
            runner_up_text=r.runner_up_text,
            reason=r.reason,
        )
        for a, r in zip(corpus.annotations, cache.rows)
    )
    return AlignmentResult(alignments=alignments, notes=tuple(cache.notes))


def save_alignment(path: Path, result: AlignmentResult) -> None:
    """Write ``result`` atomically."""
    rows = [CachedRow(al.span, al.method, al.score, al.note, al.runner_up, al.runner_up_text, al.reason) for al in result.alignments]
    write_record(path, AlignmentCache(rows, list(result.notes)))
