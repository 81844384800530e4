"""The ``[features]`` table of settings.toml."""

from __future__ import annotations

import attrs

from evdata.config import validate_fields


@attrs.frozen
class FeatureSettings:
    """How examples become windows, and how logits become spans."""

    max_length: int = 384
    """Tokens per window (question + context + special tokens)."""
    doc_stride: int = 128
    """Tokens of overlap between consecutive windows of one context."""
    max_answer_length: int = 120
    """Longest predicted span, in tokens (evidence is a sentence, so this is generous)."""
    n_best_size: int = 20
    """Start and end candidates considered per window when decoding."""
    length_group_size: int = 50
    """Batches per length group when ordering training windows (1 = fully sorted, large = near random)."""

    def __attrs_post_init__(self) -> None:
        validate_fields(
            self,
            [
                (16 <= self.max_length <= 8192, f"max_length: must be within 16..8192, got {self.max_length}"),
                (self.doc_stride >= 0, f"doc_stride: must be >= 0, got {self.doc_stride}"),
                (
                    self.doc_stride < self.max_length // 2,
                    f"doc_stride: must be less than half of max_length ({self.max_length}), got {self.doc_stride}",
                ),
                (self.max_answer_length >= 1, f"max_answer_length: must be >= 1, got {self.max_answer_length}"),
                (1 <= self.n_best_size <= 200, f"n_best_size: must be within 1..200, got {self.n_best_size}"),
                (self.length_group_size >= 1, f"length_group_size: must be >= 1, got {self.length_group_size}"),
            ],
        )
