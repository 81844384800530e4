"""The ``[features]`` table of settings.toml."""

from __future__ import annotations

import math

import attrs
from attrs.validators import ge, le

from evdata.config import validate_fields


@attrs.frozen
class FeatureSettings:
    """How examples become windows, and how logits become spans."""

    max_length: int = attrs.field(default=384, validator=[ge(16), le(8192)])
    """Tokens per window (question + context + special tokens)."""
    doc_stride: int = attrs.field(default=128, validator=ge(0))
    """Tokens of overlap between consecutive windows of one context."""
    max_answer_length: int = attrs.field(default=120, validator=ge(1))
    """Longest predicted span, in tokens (evidence is a sentence, so this is generous)."""
    n_best_size: int = attrs.field(default=20, validator=[ge(1), le(200)])
    """Start and end candidates considered per window when decoding."""
    length_group_size: int = attrs.field(default=50, validator=ge(1))
    """Batches per length group when ordering training windows (1 = fully sorted, large = near random)."""
    null_threshold: float = math.nan
    """No-answer threshold: an example holds no evidence when ``null score - best span score`` exceeds it.

    ``nan`` (the default): the threshold a run tuned on validation (SQuAD 2.0 ``best_f1_thresh``), stored in its
    ``metrics.json`` and used by evaluate, predict, report and search. A finite number overrides it everywhere.
    """
    max_spans: int = attrs.field(default=3, validator=ge(1))
    """Most evidence spans reported per (post, symptom): non-overlapping spans that each clear the threshold."""

    @property
    def fixed_null_threshold(self) -> float | None:
        """The threshold these settings fix, or None when it is the one tuned on validation (``nan``)."""
        return None if math.isnan(self.null_threshold) else float(self.null_threshold)

    def __attrs_post_init__(self) -> None:
        validate_fields(
            self,
            [
                (not math.isinf(self.null_threshold), f"null_threshold: must be a finite number or nan (tuned), got {self.null_threshold}"),
                (
                    self.doc_stride < self.max_length // 2,
                    f"doc_stride: must be less than half of max_length ({self.max_length}), got {self.doc_stride}",
                ),
            ],
        )
