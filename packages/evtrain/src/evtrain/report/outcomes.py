"""What happened to each example (exact hit, partial overlap, wrong sentence, missed, ...) and group figures."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import attrs

from evtrain.records import PredictionRecord

# (key, label, description), in the order the page lists them. The first four concern examples
# with gold evidence; the last two the examples without any (most of them in symptom mode).
OUTCOMES: tuple[tuple[str, str, str], ...] = (
    ("exact", "exact hit", "the predicted span matches a gold evidence span (SQuAD exact match)"),
    ("partial", "partial overlap", "the predicted span overlaps gold evidence but is not an exact match"),
    ("wrong_sentence", "wrong sentence", "a span was predicted but it overlaps no gold evidence"),
    ("missed", "evidence missed", "the example has gold evidence and the prediction is empty"),
    ("spurious", "evidence where none", "the example has no gold evidence but a span was predicted"),
    ("correct_empty", "correctly empty", "no gold evidence and an empty prediction"),
)
OUTCOME_LABELS: dict[str, str] = {key: label for key, label, _ in OUTCOMES}

# Word-count buckets for posts; real posts run from 2 to ~7,000 words.
LENGTH_BUCKETS: tuple[tuple[int, str], ...] = (
    (100, "under 100 words"),
    (300, "100–299 words"),
    (1000, "300–999 words"),
    (10**12, "1,000 words or more"),
)


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two non-empty half-open character spans share at least one character."""
    return a[0] < a[1] and b[0] < b[1] and a[0] < b[1] and b[0] < a[1]


def predicted(record: PredictionRecord) -> bool:
    """Whether the model put forward a non-empty span."""
    return record.end > record.start


def classify(record: PredictionRecord) -> str:
    """The outcome key of one example (see ``OUTCOMES``)."""
    if not record.gold_spans:
        return "spurious" if predicted(record) else "correct_empty"
    if record.exact_match >= 1.0:
        return "exact"
    if not predicted(record):
        return "missed"
    if any(overlaps((record.start, record.end), span) for span in record.gold_spans):
        return "partial"
    return "wrong_sentence"


def word_count(text: str) -> int:
    """Whitespace-separated words, the unit DATA.md uses for post length."""
    return len(text.split())


def length_bucket(words: int) -> str:
    """The label of the length bucket a post of ``words`` words falls into."""
    return next(label for limit, label in LENGTH_BUCKETS if words < limit)


@attrs.frozen
class GroupFigures:
    """Scores and outcome counts of a group of examples (percentages like metrics.json)."""

    name: str
    examples: int
    with_evidence: int
    posts: int
    exact_match: float
    f1: float
    f1_with_evidence: float | None
    """F1 over the examples that have gold evidence (None when there are none)."""
    outcomes: dict[str, int]


def figures(name: str, records: Sequence[PredictionRecord]) -> GroupFigures:
    """Group figures of ``records``: mean EM and F1 as percentages, counts per outcome."""
    n = len(records)
    positive = [r for r in records if r.gold_spans]
    counts = dict.fromkeys(OUTCOME_LABELS, 0)
    for r in records:
        counts[classify(r)] += 1
    return GroupFigures(
        name=name,
        examples=n,
        with_evidence=len(positive),
        posts=len({r.post_id for r in records}),
        exact_match=100.0 * sum(r.exact_match for r in records) / n if n else 0.0,
        f1=100.0 * sum(r.f1 for r in records) / n if n else 0.0,
        f1_with_evidence=100.0 * sum(r.f1 for r in positive) / len(positive) if positive else None,
        outcomes=counts,
    )


def grouped(records: Iterable[PredictionRecord], key: Callable[[PredictionRecord], str], order: Sequence[str] = ()) -> list[GroupFigures]:
    """Figures per value of ``key``: the names in ``order`` first (when present), then the rest sorted."""
    groups: dict[str, list[PredictionRecord]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    names = [name for name in order if name in groups] + sorted(name for name in groups if name not in order)
    return [figures(name, groups[name]) for name in names]
