"""The ``[data]`` table of settings.toml."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Literal

import attrs

from evdata.config import SettingsError, validate_fields

QuestionMode = Literal["empty", "symptom"]


class _Within:
    """attrs validator: ``low <= value <= high`` (strict at an open end), made of attrs' ``gt``/``ge``/``lt``/``le``.

    attrs' own validators raise a ``ValueError`` that the settings loader can only report as
    ``data: invalid value``; this one raises a ``SettingsError`` naming the key, and listing every
    out-of-range field of the instance (not only the first one attrs runs), so ``--set`` mistakes come
    back all at once as ``data.key: must be within [low, high], got value``.
    """

    def __init__(self, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> None:
        self.check = attrs.validators.and_(
            attrs.validators.gt(low) if low_open else attrs.validators.ge(low),
            attrs.validators.lt(high) if high_open else attrs.validators.le(high),
        )
        self.interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def problem(self, name: str, value: Any) -> str | None:
        """The message for ``value`` of field ``name``, or None when it is in range."""
        try:
            self.check(None, SimpleNamespace(name=name), value)
        except (ValueError, TypeError):
            return f"{name}: must be within {self.interval}, got {value!r}"
        return None

    def __call__(self, instance: Any, attribute: Any, value: Any) -> None:
        if self.problem(attribute.name, value) is None:
            return
        problems = [
            found
            for field in attrs.fields(type(instance))
            if isinstance(field.validator, _Within) and (found := field.validator.problem(field.name, getattr(instance, field.name)))
        ]
        raise SettingsError(problems, type(instance).__name__)


@attrs.frozen
class DataSettings:
    """Where the corpus comes from, how annotations are aligned, and how posts are split."""

    data_dir: str = ""
    """Folder holding posts.csv/.jsonl and annotations.csv; empty means the bundled synthetic demo corpus."""
    posts_file: str = ""
    """Explicit posts file (overrides the file found in data_dir)."""
    annotations_file: str = ""
    """Explicit annotations file (overrides the file found in data_dir)."""
    question_mode: QuestionMode = "symptom"
    """``empty``: one example per post, empty question; ``symptom``: one example per (post, symptom)."""
    no_answer_examples: bool = True
    """Read the annotation as exhaustive (ReDSM5's is): every post is asked every symptom (``symptom`` mode), or is an
    example itself (``empty`` mode), and a question without status-1 evidence is a no-answer example. ``false``: only
    questions with evidence become examples (the old, answer-known set-up)."""
    fuzzy_threshold: float = attrs.field(default=90.0, validator=_Within(0, 100))
    """Minimum rapidfuzz ratio (0-100) between annotation and post sentence for a fuzzy alignment."""
    semantic_threshold: float = attrs.field(default=0.55, validator=_Within(-1, 1))
    """Minimum span score for a similarity alignment: cosine blended with lexical containment, less the clause/run penalty."""
    semantic_margin: float = attrs.field(default=0.10, validator=_Within(0, 2))
    """The best candidate's span score must beat the best candidate elsewhere in the post (not overlapping it) by this much."""
    lexical_weight: float = attrs.field(default=0.0, validator=_Within(0, 1))
    """Weight of lexical containment (share of the annotation's content words in the candidate) in the span score; the cosine gets the rest."""
    clause_penalty: float = attrs.field(default=0.10, validator=_Within(0, 1))
    """Subtracted from a clause's span score, so a clause replaces its whole sentence only when it fits clearly better (1 = never)."""
    run_penalty: float = attrs.field(default=0.0, validator=_Within(0, 1))
    """Subtracted from the span score of a run of adjacent sentences."""
    max_run_sentences: int = attrs.field(default=3, validator=_Within(1, 5))
    """Longest run of adjacent sentences one annotation may paraphrase (1 = single sentences and clauses only)."""
    shared_span_cosine: float = attrs.field(default=0.80, validator=_Within(-1, 1))
    """Rows of one post may share a span only if their annotation texts are this alike (cosine): one sentence, two symptoms."""
    use_semantic: bool = True
    """Run the semantic alignment step (needs the sentence encoder of evmodel)."""
    train_ratio: float = attrs.field(default=0.8, validator=_Within(0, 1, low_open=True))
    val_ratio: float = attrs.field(default=0.1, validator=_Within(0, 1, high_open=True))
    test_ratio: float = attrs.field(default=0.1, validator=_Within(0, 1, high_open=True))
    split_seed: int = 13
    """Seed of the post-level split (a stable hash of seed and post_id)."""

    def __attrs_post_init__(self) -> None:
        total = self.train_ratio + self.val_ratio + self.test_ratio
        validate_fields(
            self,
            [
                (self.question_mode in ("empty", "symptom"), f"question_mode: must be 'empty' or 'symptom', got {self.question_mode!r}"),
                (abs(total - 1.0) < 1e-6, f"train_ratio + val_ratio + test_ratio: must sum to 1, got {total:g}"),
            ],
        )


# The fields the alignment result depends on (the alignment cache keys on them).
ALIGNMENT_FIELDS: tuple[str, ...] = (
    "fuzzy_threshold",
    "semantic_threshold",
    "semantic_margin",
    "lexical_weight",
    "clause_penalty",
    "run_penalty",
    "max_run_sentences",
    "shared_span_cosine",
    "use_semantic",
)
