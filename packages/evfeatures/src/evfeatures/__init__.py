"""evfeatures: stride windows with offsets and labels, length-grouped batching, vectorised span decoding.

Names are imported lazily: importing a submodule such as ``evfeatures.settings`` does not import torch.
"""

from __future__ import annotations

from evdata.lazy import lazy_exports

# name -> module; imported on first use, so `import evfeatures.settings` stays light (no torch).
# ``decode`` is left out: it names the submodule (the function is ``evfeatures.decode.decode``), and a
# lazily exported name cannot reliably shadow a submodule of the same name.
_EXPORTS = {
    "FeatureSettings": "evfeatures.settings",
    "NO_SCORE": "evfeatures.decode",
    "Decision": "evfeatures.decode",
    "Prediction": "evfeatures.decode",
    "Windows": "evfeatures.windows",
    "answer_token_span": "evfeatures.windows",
    "build_windows": "evfeatures.windows",
    "check_window_settings": "evfeatures.windows",
    "collate": "evfeatures.batching",
    "context_offsets": "evfeatures.windows",
    "decide": "evfeatures.decode",
    "decode_reference": "evfeatures.decode",
    "label_window": "evfeatures.windows",
    "length_grouped_batches": "evfeatures.batching",
    "require_fast_tokenizer": "evfeatures.windows",
    "sample_examples": "evfeatures.batching",
    "sorted_batches": "evfeatures.batching",
    "subsample_negatives": "evfeatures.batching",
    "TokenizerError": "evfeatures.windows",
    "token_budget_batches": "evfeatures.batching",
    "windows_of_examples": "evfeatures.batching",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
