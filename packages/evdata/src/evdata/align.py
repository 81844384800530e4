"""Where each annotated sentence sits in its post: a cascade of ever looser matching steps.

1. ``exact``: the annotation is a substring of the post.
2. ``casefold``: the same, ignoring case.
3. ``normalized``: the same after NFKC, case folding, ASCII quotes and dashes and collapsed whitespace
   (offsets mapped back to the original post).
4. ``fuzzy``: the post sentence with the highest character similarity (rapidfuzz ratio of the
   normalised texts), if it reaches ``fuzzy_threshold``.
5. ``semantic``: the post sentence with the highest cosine similarity from a ``SentenceSimilarity``
   scorer, if it reaches ``semantic_threshold`` and beats every other sentence by ``semantic_margin``.
6. ``unaligned``.

Steps 4 and 5 return the whole matched post sentence, so an answer is always a real substring of
its post. A wrong span teaches a model the wrong thing, so every threshold errs towards leaving a
row unaligned (it is still reported) rather than guessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Protocol, runtime_checkable

import attrs
from rapidfuzz import fuzz

from evdata.normalize import MappedText, casefold_map, find_mapped, normalize_map, normalize_text
from evdata.records import Alignment, Annotation, Corpus, Post, Span
from evdata.sentences import split_sentences
from evdata.settings import DataSettings

METHODS: tuple[str, ...] = ("exact", "casefold", "normalized", "fuzzy", "semantic", "unaligned")


@runtime_checkable
class SentenceSimilarity(Protocol):
    """Scores how alike in meaning sentences are (implemented outside evdata, e.g. by evmodel)."""

    def similarity(self, queries: Sequence[str], candidates: Sequence[str]) -> Sequence[Sequence[float]]:
        """Cosine similarity matrix: one row per query, one column per candidate."""
        ...


@attrs.frozen
class AlignmentResult:
    """One ``Alignment`` per annotation row, in file order, and notes about the run as a whole."""

    alignments: tuple[Alignment, ...]
    notes: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        """Number of rows per method (every method present, zero included)."""
        counts = dict.fromkeys(METHODS, 0)
        for alignment in self.alignments:
            counts[alignment.method] = counts.get(alignment.method, 0) + 1
        return counts


@attrs.frozen
class _Candidate:
    start: int
    end: int
    normalized: str


class _PostIndex:
    """Everything the cascade needs about one post, each piece computed on first use."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._windows: dict[int, list[_Candidate]] = {}

    @cached_property
    def casefolded(self) -> MappedText:
        return casefold_map(self.text)

    @cached_property
    def normalized(self) -> MappedText:
        return normalize_map(self.text)

    @cached_property
    def sentences(self) -> list[tuple[int, int]]:
        return split_sentences(self.text)

    def candidates(self, size: int) -> list[_Candidate]:
        """Runs of ``size`` consecutive sentences (``size`` 1: the sentences themselves)."""
        size = max(1, min(size, len(self.sentences)))
        if size not in self._windows:
            spans = self.sentences
            self._windows[size] = [
                _Candidate(spans[i][0], spans[i + size - 1][1], normalize_text(self.text[spans[i][0] : spans[i + size - 1][1]]))
                for i in range(len(spans) - size + 1)
            ]
        return self._windows[size]


def _candidate_pool(post: _PostIndex, query: str) -> list[_Candidate]:
    """Single sentences, plus runs as long as the query when it holds several sentences."""
    pool = list(post.candidates(1))
    size = len(split_sentences(query))
    if size > 1 and len(post.sentences) >= size:
        pool.extend(post.candidates(size))
    return pool


def _occurrence_note(occurrences: int) -> str:
    return "occurs more than once in the post; took the first occurrence" if occurrences > 1 else ""


def _match_text(post: _PostIndex, sentence: str) -> tuple[Span, str] | None:
    """Steps 1-3: exact, case-insensitive and normalised substring search."""
    needle = sentence.strip()
    if not needle:
        return None
    index = post.text.find(needle)
    if index >= 0:
        again = post.text.find(needle, index + 1) >= 0
        return Span(index, index + len(needle), "exact", 1.0), _occurrence_note(2 if again else 1)
    for method, mapped, folded in (
        ("casefold", post.casefolded, casefold_map(needle).text),
        ("normalized", post.normalized, normalize_text(needle)),
    ):
        found = find_mapped(mapped, folded)
        if found is not None:
            start, end, occurrences = found
            return Span(start, end, method, 1.0), _occurrence_note(occurrences)
    return None


def _best_two(scores: Sequence[float], pool: Sequence[_Candidate]) -> tuple[int, float, float | None, bool]:
    """Index and score of the best candidate, the runner-up score (None if none), and whether the best text repeats.

    A sentence written twice in a post is one answer, not a doubt: the winner is its first
    occurrence, and the runner-up is the best candidate that neither overlaps the winner (a run of
    sentences containing it) nor has the same normalised text.
    """
    best = max(range(len(pool)), key=lambda i: (scores[i], -i))
    same = [i for i, candidate in enumerate(pool) if candidate.normalized == pool[best].normalized]
    best = same[0]
    winner = pool[best]
    runner_up: float | None = None
    for i, candidate in enumerate(pool):
        if i in same or (candidate.start < winner.end and winner.start < candidate.end):
            continue
        runner_up = float(scores[i]) if runner_up is None else max(runner_up, float(scores[i]))
    return best, float(max(scores[i] for i in same)), runner_up, len(same) > 1


def _match_fuzzy(post: _PostIndex, sentence: str, threshold: float) -> tuple[Span | None, float, str]:
    """Step 4: best character similarity against the post's sentences (score and note even when below threshold)."""
    query = normalize_text(sentence)
    pool = _candidate_pool(post, sentence)
    if not query or not pool:
        return None, 0.0, ""
    scores = [fuzz.ratio(query, candidate.normalized) for candidate in pool]
    best, score, _, repeated = _best_two(scores, pool)
    if score >= threshold:
        note = "matched sentence occurs more than once in the post; took the first occurrence" if repeated else ""
        return Span(pool[best].start, pool[best].end, "fuzzy", score / 100.0), score / 100.0, note
    return None, score / 100.0, f"closest post sentence: fuzzy ratio {score:.1f} < {threshold:g}"


def _decide_semantic(scores: Sequence[float], pool: Sequence[_Candidate], settings: DataSettings) -> tuple[Span | None, float, str]:
    """Step 5 for one query, given its cosine similarity to every candidate in ``pool``."""
    if not pool:
        return None, 0.0, "post has no sentences to compare with"
    best, score, runner_up, repeated = _best_two(scores, pool)
    if score < settings.semantic_threshold:
        return None, score, f"closest post sentence: cosine {score:.3f} < {settings.semantic_threshold:g}"
    if runner_up is not None and score - runner_up < settings.semantic_margin:
        return None, score, f"doubtful: best cosine {score:.3f}, runner-up {runner_up:.3f} (margin {settings.semantic_margin:g})"
    note = "matched sentence occurs more than once in the post; took the first occurrence" if repeated else ""
    return Span(pool[best].start, pool[best].end, "semantic", score), score, note


def _check_matrix(matrix: Sequence[Sequence[float]], rows: int, columns: int) -> list[list[float]]:
    values = [[float(x) for x in row] for row in matrix]
    if len(values) != rows or any(len(row) != columns for row in values):
        shape = f"{len(values)}x{len(values[0]) if values else 0}"
        raise ValueError(f"sentence similarity returned a {shape} matrix, expected {rows}x{columns} (queries x candidates)")
    return values


def _semantic_batch(
    post: _PostIndex, sentences: Sequence[str], settings: DataSettings, similarity: SentenceSimilarity
) -> list[tuple[Span | None, float, str]]:
    """Step 5 for several annotation sentences of one post, with a single similarity call."""
    pools = [_candidate_pool(post, sentence) for sentence in sentences]
    candidate_index: dict[tuple[int, int], int] = {}
    candidates: list[str] = []
    for pool in pools:
        for candidate in pool:
            if (candidate.start, candidate.end) not in candidate_index:
                candidate_index[(candidate.start, candidate.end)] = len(candidates)
                candidates.append(post.text[candidate.start : candidate.end])
    queries = list(dict.fromkeys(sentence.strip() for sentence in sentences))
    if not candidates:
        return [(None, 0.0, "post has no sentences to compare with")] * len(sentences)
    matrix = _check_matrix(similarity.similarity(queries, candidates), len(queries), len(candidates))
    results = []
    for sentence, pool in zip(sentences, pools):
        row = matrix[queries.index(sentence.strip())]
        results.append(_decide_semantic([row[candidate_index[(c.start, c.end)]] for c in pool], pool, settings))
    return results


def _semantic_enabled(settings: DataSettings, similarity: SentenceSimilarity | None) -> tuple[bool, str]:
    if not settings.use_semantic:
        return False, "semantic step skipped: data.use_semantic is false"
    if similarity is None:
        return False, "semantic step skipped: no sentence-similarity scorer"
    return True, ""


def align_annotation(
    post_text: str, sentence: str, settings: DataSettings, similarity: SentenceSimilarity | None = None
) -> tuple[Span | None, str, float]:
    """Align one annotation sentence with its post: ``(span or None, method, score)``.

    ``score`` is 1.0 for the substring steps, the fuzzy ratio / 100 or the cosine for the similarity
    steps, and for an unaligned row the best similarity seen (why it was not enough).
    """
    span, method, score, _ = _align_rows(_PostIndex(post_text), [sentence], settings, similarity)[0]
    return span, method, score


def _align_rows(
    post: _PostIndex, sentences: Sequence[str], settings: DataSettings, similarity: SentenceSimilarity | None
) -> list[tuple[Span | None, str, float, str]]:
    """Run the cascade for the annotation sentences of one post: ``(span, method, score, note)`` each."""
    results: list[tuple[Span | None, str, float, str] | None] = [None] * len(sentences)
    pending: list[int] = []
    fallback: dict[int, tuple[float, str]] = {}
    for i, sentence in enumerate(sentences):
        if not sentence.strip():
            results[i] = (None, "unaligned", 0.0, "empty annotation sentence")
            continue
        matched = _match_text(post, sentence)
        if matched is not None:
            span, note = matched
            results[i] = (span, span.method, span.score, note)
            continue
        span, score, note = _match_fuzzy(post, sentence, settings.fuzzy_threshold)
        if span is not None:
            results[i] = (span, "fuzzy", score, note)
            continue
        fallback[i] = (score, note)
        pending.append(i)
    enabled, _ = _semantic_enabled(settings, similarity)
    if pending and enabled:
        assert similarity is not None
        decided = _semantic_batch(post, [sentences[i] for i in pending], settings, similarity)
        for i, (span, score, note) in zip(pending, decided):
            results[i] = (span, "semantic", score, note) if span is not None else (None, "unaligned", score, note)
    for i in pending:
        if results[i] is None:
            score, note = fallback[i]
            results[i] = (None, "unaligned", score, note)
    return [r for r in results if r is not None]


def align_corpus(corpus: Corpus, settings: DataSettings, similarity: SentenceSimilarity | None = None) -> AlignmentResult:
    """Align every annotation row of ``corpus`` with its post (one similarity call per post)."""
    posts: dict[str, Post] = {post.post_id: post for post in corpus.posts}
    rows_by_post: dict[str, list[int]] = {}
    for i, annotation in enumerate(corpus.annotations):
        rows_by_post.setdefault(annotation.post_id, []).append(i)
    aligned: list[Alignment | None] = [None] * len(corpus.annotations)
    for post_id, rows in rows_by_post.items():
        annotations: list[Annotation] = [corpus.annotations[i] for i in rows]
        if post_id not in posts:
            for i, annotation in zip(rows, annotations):
                aligned[i] = Alignment(annotation, None, "unaligned", 0.0, "no post with this post_id")
            continue
        results = _align_rows(_PostIndex(posts[post_id].text), [a.sentence_text for a in annotations], settings, similarity)
        for i, annotation, (span, method, score, note) in zip(rows, annotations, results):
            aligned[i] = Alignment(annotation, span, method, score, note)
    alignments = tuple(a for a in aligned if a is not None)
    notes: list[str] = []
    enabled, why = _semantic_enabled(settings, similarity)
    if not enabled:
        notes.append(why)
    repeated = sum(1 for a in alignments if "more than once" in a.note)
    if repeated:
        notes.append(f"{repeated} annotation row(s) matched text that occurs more than once in its post; took the first occurrence")
    unaligned = sum(1 for a in alignments if a.span is None)
    if unaligned:
        notes.append(f"{unaligned} of {len(alignments)} annotation row(s) left unaligned (listed in the alignment report)")
    return AlignmentResult(alignments=alignments, notes=tuple(notes))
