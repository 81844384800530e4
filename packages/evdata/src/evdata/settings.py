"""The ``[data]`` table of settings.toml."""

from __future__ import annotations

from typing import Literal

import attrs

from evdata.config import validate_fields

QuestionMode = Literal["empty", "symptom"]


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
    fuzzy_threshold: float = 90.0
    """Minimum rapidfuzz ratio (0-100) between annotation and post sentence for a fuzzy alignment."""
    semantic_threshold: float = 0.60
    """Minimum cosine similarity for a semantic alignment."""
    semantic_margin: float = 0.10
    """The best post sentence must beat the runner-up by this much cosine, or the row stays unaligned."""
    use_semantic: bool = True
    """Run the semantic alignment step (needs the sentence encoder of evmodel)."""
    train_ratio: float = 0.8
    val_ratio: float = 0.1
    test_ratio: float = 0.1
    split_seed: int = 13
    """Seed of the post-level split (a stable hash of seed and post_id)."""

    def __attrs_post_init__(self) -> None:
        total = self.train_ratio + self.val_ratio + self.test_ratio
        validate_fields(
            self,
            [
                (self.question_mode in ("empty", "symptom"), f"question_mode: must be 'empty' or 'symptom', got {self.question_mode!r}"),
                (0 <= self.fuzzy_threshold <= 100, f"fuzzy_threshold: must be within 0..100, got {self.fuzzy_threshold}"),
                (-1 <= self.semantic_threshold <= 1, f"semantic_threshold: must be within -1..1, got {self.semantic_threshold}"),
                (0 <= self.semantic_margin <= 2, f"semantic_margin: must be within 0..2, got {self.semantic_margin}"),
                (0 < self.train_ratio <= 1, f"train_ratio: must be within (0, 1], got {self.train_ratio}"),
                (0 <= self.val_ratio < 1, f"val_ratio: must be within [0, 1), got {self.val_ratio}"),
                (0 <= self.test_ratio < 1, f"test_ratio: must be within [0, 1), got {self.test_ratio}"),
                (abs(total - 1.0) < 1e-6, f"train_ratio + val_ratio + test_ratio: must sum to 1, got {total:g}"),
            ],
        )
