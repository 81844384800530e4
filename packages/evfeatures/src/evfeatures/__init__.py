"""evfeatures: stride windows with offsets and labels, length-grouped batching, vectorised span decoding."""

from evfeatures.batching import collate, length_grouped_batches, sorted_batches, subsample_negatives, token_budget_batches
from evfeatures.decode import NO_SCORE, Prediction, decode, decode_reference
from evfeatures.settings import FeatureSettings
from evfeatures.windows import (
    Windows,
    answer_token_span,
    build_windows,
    check_window_settings,
    context_offsets,
    label_window,
    require_fast_tokenizer,
)

__all__ = [
    "NO_SCORE",
    "FeatureSettings",
    "Prediction",
    "Windows",
    "answer_token_span",
    "build_windows",
    "check_window_settings",
    "collate",
    "context_offsets",
    "decode",
    "decode_reference",
    "label_window",
    "length_grouped_batches",
    "require_fast_tokenizer",
    "sorted_batches",
    "subsample_negatives",
    "token_budget_batches",
]
