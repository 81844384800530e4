"""Where each annotated sentence sits in its post: a cascade of ever looser matching steps.

1. ``exact``: the annotation is a substring of the post.
2. ``casefold``: the same, ignoring case.
3. ``normalized``: the same after NFKC, case folding, ASCII quotes and dashes and collapsed whitespace
   (offsets mapped back to the original post).
4. ``fuzzy``: the post sentence with the highest character similarity (rapidfuzz ratio of the
   normalised texts), if it reaches ``fuzzy_threshold``.
5. The similarity step, for paraphrases. Candidates are the post's sentences, their clauses (cut at
   , ; : dashes and conjunctions, ``sentences.clause_spans``) and runs of two or three adjacent
   sentences. Each candidate's span score is the cosine from a ``SentenceSimilarity`` scorer blended
   with lexical containment (the share of the annotation's content words the candidate holds),
   less a penalty for clauses and runs, so that a whole sentence wins unless a part of it, or a run
   around it, fits clearly better. The best candidate is taken if its score reaches
   ``semantic_threshold`` and leads the best candidate elsewhere in the post (one that does not
   overlap it) by ``semantic_margin``. The method names the shape of the answer: ``semantic`` (a
   sentence), ``semantic_clause`` or ``semantic_sentences`` (adjacent sentences).
6. ``unaligned``.

The rows of one post are resolved together: two rows whose annotations say different things may
not take the same span (IoU >= 0.5); the row with the higher score keeps it, the other takes its
best remaining candidate if that passes the same rules, else it stays unaligned. Near-identical
annotation texts (one sentence annotated for two symptoms) may share a span.

Every answer is a real substring of its post. A wrong span teaches a model the wrong thing, so every
rule errs towards leaving a row unaligned (it is still reported, with its best and runner-up
candidates and why) rather than guessing. Thresholds are calibrated on the labelled paraphrase set
in ``packages/evdata/tests/data/paraphrase``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Protocol, runtime_checkable

import attrs
from rapidfuzz import fuzz

from evdata.normalize import MappedText, casefold_map, containment, content_words, find_mapped, normalize_map, normalize_text
from evdata.records import Alignment, Annotation, Corpus, Post, Span
from evdata.sentences import clause_spans, split_sentences
from evdata.settings import DataSettings

SIMILARITY_METHODS: tuple[str, ...] = ("semantic", "semantic_clause", "semantic_sentences")
METHODS: tuple[str, ...] = ("exact", "casefold", "normalized", "fuzzy", *SIMILARITY_METHODS, "unaligned")
_METHOD_BY_KIND = {"sentence": "semantic", "clause": "semantic_clause", "sentences": "semantic_sentences"}
# Two spans with at least this character IoU are "one span" for the joint resolution of a post's rows.
CLAIM_IOU = 0.5
# Clauses and runs are scored only around the sentences that look promising for some annotation:
# its best sentences by cosine and by lexical containment (a clause paraphrase inside a long
# sentence dilutes that sentence's cosine, but not its containment).
PROMISING_BY_COSINE = 4
PROMISING_BY_CONTAINMENT = 2


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
    """A span of the post an annotation may paraphrase: a sentence, a clause of one, or a run of sentences."""

    start: int
    end: int
    kind: str  # sentence | clause | sentences
    normalized: str
    first: int  # index of the first and last post sentence it covers
    last: int


@attrs.frozen
class _Scored:
    """A candidate's scores for one annotation: the span score the rules use, and its parts."""

    candidate: _Candidate
    score: float
    cosine: float
    lexical: float


@attrs.frozen
class _Row:
    """What the cascade decided for one annotation row of a post."""

    span: Span | None
    method: str
    score: float
    note: str = ""
    reason: str = ""
    runner_up: Span | None = None
    runner_up_text: str = ""


class _PostIndex:
    """Everything the cascade needs about one post, each piece computed on first use."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._windows: dict[int, list[_Candidate]] = {}
        self._clauses: dict[int, list[_Candidate]] = {}
        self._words: dict[tuple[int, int], frozenset[str]] = {}

    @cached_property
    def casefolded(self) -> MappedText:
        return casefold_map(self.text)

    @cached_property
    def normalized(self) -> MappedText:
        return normalize_map(self.text)

    @cached_property
    def sentences(self) -> list[tuple[int, int]]:
        return split_sentences(self.text)

    def _candidate(self, start: int, end: int, kind: str, first: int, last: int) -> _Candidate:
        return _Candidate(start, end, kind, normalize_text(self.text[start:end]), first, last)

    def candidates(self, size: int) -> list[_Candidate]:
        """Runs of ``size`` consecutive sentences (``size`` 1: the sentences themselves)."""
        size = max(1, min(size, len(self.sentences)))
        if size not in self._windows:
            spans = self.sentences
            kind = "sentence" if size == 1 else "sentences"
            self._windows[size] = [
                self._candidate(spans[i][0], spans[i + size - 1][1], kind, i, i + size - 1) for i in range(len(spans) - size + 1)
            ]
        return self._windows[size]

    def clauses(self, index: int) -> list[_Candidate]:
        """The clause candidates of sentence ``index``."""
        if index not in self._clauses:
            spans = clause_spans(self.text, self.sentences[index])
            self._clauses[index] = [self._candidate(start, end, "clause", index, index) for start, end in spans]
        return self._clauses[index]

    def words(self, candidate: _Candidate) -> frozenset[str]:
        """Content words of a candidate (for lexical containment)."""
        key = (candidate.start, candidate.end)
        if key not in self._words:
            self._words[key] = content_words(self.text[candidate.start : candidate.end])
        return self._words[key]


def _candidate_pool(post: _PostIndex, query: str) -> list[_Candidate]:
    """Fuzzy step: single sentences, plus runs as long as the query when it holds several sentences."""
    pool = list(post.candidates(1))
    size = len(split_sentences(query))
    if size > 1 and len(post.sentences) >= size:
        pool.extend(post.candidates(size))
    return pool


def _occurrence_note(occurrences: int) -> str:
    return "occurs more than once in the post; took the first occurrence" if occurrences > 1 else ""


_REPEATED = "matched text occurs more than once in the post; took the first occurrence"


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


def _overlaps(a: _Candidate, b: _Candidate) -> bool:
    return a.start < b.end and b.start < a.end


def _best_two(scored: Sequence[_Scored]) -> tuple[_Scored, _Scored | None, bool]:
    """The best candidate, the runner-up, and whether the best text repeats in the post.

    A sentence written twice in a post is one answer, not a doubt: the winner is its first
    occurrence, and the runner-up is the best candidate that neither overlaps the winner (a clause
    of it, a run holding it) nor has the same normalised text.
    """
    best = max(range(len(scored)), key=lambda i: (scored[i].score, -i))
    winner = scored[best].candidate
    same = [s for s in scored if s.candidate.normalized == winner.normalized]
    first = min(same, key=lambda s: s.candidate.start)
    runner_up = None
    for s in scored:
        if s.candidate.normalized == winner.normalized or any(_overlaps(s.candidate, t.candidate) for t in same):
            continue
        if runner_up is None or s.score > runner_up.score:
            runner_up = s
    return attrs.evolve(first, score=scored[best].score), runner_up, len(same) > 1


def _runner_up_fields(post: _PostIndex, runner_up: _Scored | None, method: str) -> dict[str, object]:
    if runner_up is None:
        return {}
    c = runner_up.candidate
    return {"runner_up": Span(c.start, c.end, method, runner_up.score), "runner_up_text": post.text[c.start : c.end]}


def _match_fuzzy(post: _PostIndex, sentence: str, threshold: float) -> _Row:
    """Step 4: best character similarity against the post's sentences (a reasoned row even when below threshold)."""
    query = normalize_text(sentence)
    pool = _candidate_pool(post, sentence)
    if not query or not pool:
        why = "post has no sentences to compare with"
        return _Row(None, "unaligned", 0.0, note=why, reason=why)
    scored = [_Scored(c, fuzz.ratio(query, c.normalized) / 100.0, 0.0, 0.0) for c in pool]
    best, runner_up, repeated = _best_two(scored)
    score = best.score
    extra = _runner_up_fields(post, runner_up, "fuzzy")
    versus = f"; runner-up {runner_up.score * 100:.1f}" if runner_up is not None else ""
    if score * 100 >= threshold:
        c = best.candidate
        return _Row(
            Span(c.start, c.end, "fuzzy", score),
            "fuzzy",
            score,
            note=_REPEATED if repeated else "",
            reason=f"fuzzy ratio {score * 100:.1f} >= {threshold:g}{versus}",
            **extra,  # type: ignore[arg-type]
        )
    reason = f"closest post sentence: fuzzy ratio {score * 100:.1f} < {threshold:g}"
    return _Row(None, "unaligned", score, note=reason, reason=reason, **extra)  # type: ignore[arg-type]


def _check_matrix(matrix: Sequence[Sequence[float]], rows: int, columns: int) -> list[list[float]]:
    values = [[float(x) for x in row] for row in matrix]
    if len(values) != rows or any(len(row) != columns for row in values):
        shape = f"{len(values)}x{len(values[0]) if values else 0}"
        raise ValueError(f"sentence similarity returned a {shape} matrix, expected {rows}x{columns} (queries x candidates)")
    return values


def _cosines(similarity: SentenceSimilarity, queries: Sequence[str], texts: Sequence[str]) -> list[list[float]]:
    """One similarity call, each distinct text asked once: a row per query, a column per text."""
    unique = list(dict.fromkeys(texts))
    matrix = _check_matrix(similarity.similarity(list(queries), unique), len(queries), len(unique))
    column = {text: i for i, text in enumerate(unique)}
    return [[row[column[text]] for text in texts] for row in matrix]


def _penalty(candidate: _Candidate, settings: DataSettings) -> float:
    if candidate.kind == "clause":
        return settings.clause_penalty
    if candidate.kind == "sentences":
        return settings.run_penalty
    return 0.0


def _span_score(cosine: float, lexical: float, candidate: _Candidate, settings: DataSettings) -> float:
    """The score the rules compare with ``semantic_threshold``: blended cosine and containment, less the shape penalty."""
    w = settings.lexical_weight
    return (1.0 - w) * cosine + w * lexical - _penalty(candidate, settings)


def _promising(post: _PostIndex, cosines: Sequence[float], words: frozenset[str], settings: DataSettings) -> list[_Candidate]:
    """The clauses and runs worth scoring for one query: those of (and around) its best sentences by cosine and by containment."""
    n = len(post.sentences)
    by_cosine = sorted(range(n), key=lambda i: -cosines[i])[:PROMISING_BY_COSINE]
    lexical = [containment(words, post.words(c)) for c in post.candidates(1)]
    by_lexical = [i for i in sorted(range(n), key=lambda i: -lexical[i])[:PROMISING_BY_CONTAINMENT] if lexical[i] > 0]
    chosen = set(by_cosine) | set(by_lexical)
    extra: list[_Candidate] = []
    if settings.clause_penalty < 1.0:
        for i in sorted(chosen):
            extra.extend(post.clauses(i))
    for size in range(2, min(settings.max_run_sentences, n) + 1):
        extra.extend(c for c in post.candidates(size) if all(i in chosen for i in range(c.first, c.last + 1)))
    return extra


def _score_all(
    post: _PostIndex, queries: Sequence[str], others: Sequence[str], settings: DataSettings, similarity: SentenceSimilarity
) -> tuple[list[list[_Scored]], list[list[float]]]:
    """Every candidate scored for every query, and each query's cosine to each of ``others`` (the post's annotation texts).

    Two similarity calls: the sentences (and ``others``) first, then the clauses and runs around the
    sentences that look promising for some query.
    """
    sentences = post.candidates(1)
    texts = [post.text[c.start : c.end] for c in sentences]
    first = _cosines(similarity, queries, [*texts, *others])
    alike = [row[len(texts) :] for row in first]
    first = [row[: len(texts)] for row in first]
    words = [content_words(q) for q in queries]
    extra: dict[tuple[int, int, str], _Candidate] = {}
    for row, query_words in zip(first, words):
        for c in _promising(post, row, query_words, settings):
            extra.setdefault((c.start, c.end, c.kind), c)
    more = list(extra.values())
    second = _cosines(similarity, queries, [post.text[c.start : c.end] for c in more]) if more else [[] for _ in queries]
    pools = []
    for cos_s, cos_m, query_words in zip(first, second, words):
        pool = []
        for candidate, cosine in zip([*sentences, *more], [*cos_s, *cos_m]):
            lexical = containment(query_words, post.words(candidate))
            pool.append(_Scored(candidate, _span_score(cosine, lexical, candidate, settings), cosine, lexical))
        pools.append(pool)
    return pools, alike


def _describe(s: _Scored, settings: DataSettings) -> str:
    parts = f"cosine {s.cosine:.3f}, containment {s.lexical:.2f}"
    penalty = _penalty(s.candidate, settings)
    if penalty:
        parts += f", {s.candidate.kind} penalty {penalty:g}"
    return f"{s.candidate.kind} score {s.score:.3f} ({parts})"


def _decide(post: _PostIndex, pool: Sequence[_Scored], settings: DataSettings, prefix: str = "") -> _Row:
    """Step 5 for one annotation: threshold and margin on the span score of its best candidate."""
    if not pool:
        return _Row(None, "unaligned", 0.0, note=prefix + "no candidate left", reason=prefix + "no candidate left")
    best, runner_up, repeated = _best_two(pool)
    c = best.candidate
    method = _METHOD_BY_KIND[c.kind]
    extra = _runner_up_fields(post, runner_up, _METHOD_BY_KIND[runner_up.candidate.kind] if runner_up else method)
    versus = f"runner-up {runner_up.score:.3f}" if runner_up is not None else "no runner-up"
    if best.score < settings.semantic_threshold:
        reason = f"{prefix}best {_describe(best, settings)} < threshold {settings.semantic_threshold:g}; {versus}"
        return _Row(None, "unaligned", best.score, note=reason, reason=reason, **extra)  # type: ignore[arg-type]
    if runner_up is not None and best.score - runner_up.score < settings.semantic_margin:
        reason = (
            f"{prefix}doubtful: best {_describe(best, settings)} leads {versus} by {best.score - runner_up.score:.3f}"
            f" < margin {settings.semantic_margin:g}"
        )
        return _Row(None, "unaligned", best.score, note=reason, reason=reason, **extra)  # type: ignore[arg-type]
    lead = f"leads {versus} by {best.score - runner_up.score:.3f}" if runner_up is not None else "no runner-up"
    reason = f"{prefix}{_describe(best, settings)} >= {settings.semantic_threshold:g}; {lead}"
    return _Row(Span(c.start, c.end, method, best.score), method, best.score, note=_REPEATED if repeated else "", reason=reason, **extra)  # type: ignore[arg-type]


def _iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = min(a[1], b[1]) - max(a[0], b[0])
    return max(0, inter) / (max(a[1], b[1]) - min(a[0], b[0]))


def _resolve(
    post: _PostIndex,
    labels: Sequence[str],
    rows: list[_Row | None],
    pools: dict[int, list[_Scored]],
    alike: dict[int, list[float]],
    settings: DataSettings,
) -> None:
    """Joint resolution of a post's rows, in place: rows saying different things never share one span.

    Rows aligned by the substring and fuzzy steps hold their spans first; similarity rows then take
    theirs from the highest score down. A row whose span (IoU >= ``CLAIM_IOU``) is already held by a
    row whose annotation says something else (cosine of the two annotation texts below
    ``shared_span_cosine``) re-decides among the candidates nobody else holds, under the same
    threshold and margin, or stays unaligned.
    """
    claims: list[tuple[int, tuple[int, int]]] = []
    for i, row in enumerate(rows):
        if i not in pools and row is not None and row.span is not None:
            claims.append((i, (row.span.start, row.span.end)))
    order = sorted((i for i in pools if rows[i] is not None and rows[i].span is not None), key=lambda i: (-rows[i].score, i))  # type: ignore[union-attr]

    def holder(i: int, span: tuple[int, int]) -> int | None:
        for j, held in claims:
            if _iou(held, span) >= CLAIM_IOU and alike[i][j] < settings.shared_span_cosine:
                return j
        return None

    for i in order:
        row = rows[i]
        assert row is not None and row.span is not None
        j = holder(i, (row.span.start, row.span.end))
        if j is not None:
            free = [s for s in pools[i] if holder(i, (s.candidate.start, s.candidate.end)) is None]
            held = post.text[row.span.start : row.span.end]
            prefix = (
                f"its best span {held[:60]!r} is held by row {labels[j]}, whose annotation says something else (cosine {alike[i][j]:.2f}); "
            )
            decided = _decide(post, free, settings, prefix)
            rows[i] = row = decided if decided.span is not None else attrs.evolve(decided, score=row.score)
        if row.span is not None:
            claims.append((i, (row.span.start, row.span.end)))


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

    ``score`` is 1.0 for the substring steps, the fuzzy ratio / 100 for the fuzzy step, the span
    score (see the module docstring) for the similarity step, and for an unaligned row the best
    score seen (why it was not enough).
    """
    row = _align_rows(_PostIndex(post_text), [sentence], settings, similarity)[0]
    return row.span, row.method, row.score


def _align_rows(
    post: _PostIndex,
    sentences: Sequence[str],
    settings: DataSettings,
    similarity: SentenceSimilarity | None,
    labels: Sequence[str] | None = None,
) -> list[_Row]:
    """Run the cascade for the annotation sentences of one post (``labels`` name the rows in reasons)."""
    labels = labels or [str(i) for i in range(len(sentences))]
    rows: list[_Row | None] = [None] * len(sentences)
    pending: list[int] = []
    for i, sentence in enumerate(sentences):
        if not sentence.strip():
            rows[i] = _Row(None, "unaligned", 0.0, note="empty annotation sentence", reason="empty annotation sentence")
            continue
        matched = _match_text(post, sentence)
        if matched is not None:
            span, note = matched
            rows[i] = _Row(span, span.method, span.score, note=note)
            continue
        fuzzy = _match_fuzzy(post, sentence, settings.fuzzy_threshold)
        rows[i] = fuzzy
        if fuzzy.span is None:
            pending.append(i)
    enabled, why = _semantic_enabled(settings, similarity)
    if pending and not enabled:
        for i in pending:
            row = rows[i]
            assert row is not None
            rows[i] = attrs.evolve(row, reason=f"{row.reason}; {why}")
    if pending and enabled and post.sentences:
        assert similarity is not None
        queries = list(dict.fromkeys(sentences[i].strip() for i in pending))
        # A post with several rows also compares its annotation texts, for the joint resolution.
        others = [s.strip() for s in sentences] if len(sentences) > 1 else []
        scored, cosines = _score_all(post, queries, others, settings, similarity)
        pools = {i: scored[queries.index(sentences[i].strip())] for i in pending}
        for i in pending:
            rows[i] = _decide(post, pools[i], settings)
        if others:
            folded = [normalize_text(s) for s in sentences]
            alike = {
                i: [1.0 if folded[i] == folded[j] else value for j, value in enumerate(cosines[queries.index(sentences[i].strip())])]
                for i in pending
            }
            _resolve(post, labels, rows, pools, alike, settings)
    return [row for row in rows if row is not None]


def align_corpus(
    corpus: Corpus,
    settings: DataSettings,
    similarity: SentenceSimilarity | None = None,
    *,
    on_post: Callable[[], None] | None = None,
) -> AlignmentResult:
    """Align every annotation row of ``corpus`` with its post (at most two similarity calls per post).

    ``on_post`` is called once per annotated post, after its rows are aligned (a progress display).
    """
    done_with_post = on_post or (lambda: None)
    posts: dict[str, Post] = {post.post_id: post for post in corpus.posts}
    rows_by_post: dict[str, list[int]] = {}
    for i, annotation in enumerate(corpus.annotations):
        rows_by_post.setdefault(annotation.post_id, []).append(i)
    aligned: list[Alignment | None] = [None] * len(corpus.annotations)
    for post_id, indices in rows_by_post.items():
        annotations: list[Annotation] = [corpus.annotations[i] for i in indices]
        if post_id not in posts:
            for i, annotation in zip(indices, annotations):
                why = "no post with this post_id"
                aligned[i] = Alignment(annotation, None, "unaligned", 0.0, why, reason=why)
            done_with_post()
            continue
        labels = [f"{a.sentence_id} ({a.symptom})" for a in annotations]
        rows = _align_rows(_PostIndex(posts[post_id].text), [a.sentence_text for a in annotations], settings, similarity, labels)
        for i, annotation, row in zip(indices, annotations, rows):
            aligned[i] = Alignment(
                annotation,
                row.span,
                row.method,
                row.score,
                row.note,
                runner_up=row.runner_up,
                runner_up_text=row.runner_up_text,
                reason=row.reason,
            )
        done_with_post()
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
        notes.append(f"{unaligned} of {len(alignments)} annotation row(s) left unaligned (listed in the alignment report, with why)")
    return AlignmentResult(alignments=alignments, notes=tuple(notes))
