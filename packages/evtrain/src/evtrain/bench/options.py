"""What one ``invoke bench`` measures: steps, rounds, batch size, evaluation subset, the recipe's precision."""

from __future__ import annotations

from typing import Literal

import attrs

from evdata.config import validate_fields


@attrs.frozen
class BenchOptions:
    """Knobs of the side-by-side benchmark (the encoder, data and evspan levers come from settings.toml)."""

    steps: int = 40
    """Optimizer steps each side trains (the same number on both)."""
    rounds: int = 2
    """Times each side runs, alternating recipe, evspan, recipe, evspan, ... (each in a fresh process)."""
    batch_size: int = 12
    """Training windows per optimizer step, both sides (no gradient accumulation)."""
    eval_examples: int = 0
    """Validation examples both sides evaluate (the first N of the val split; 0 = all of it)."""
    eval_repeats: int = 5
    """Passes each side makes over the evaluation examples with its trained model; the fastest counts.

    One pass takes seconds, so a busy moment of the machine can double it; the fastest of several is
    what the code can do here (every pass is kept in the JSON)."""
    recipe_precision: Literal["fp32", "bf16"] = "fp32"
    """The recipe's Trainer precision: ``fp32`` is its default; ``bf16`` passes ``bf16=True`` as a user could."""
    peak_seconds: float = 0.5
    """Seconds spent timing each matmul shape when measuring the fp32 and bf16 peaks."""
    side_timeout: int = 1800
    """Seconds one side may run before the benchmark gives up on it."""

    def __attrs_post_init__(self) -> None:
        validate_fields(
            self,
            [
                (self.steps >= 1, f"steps: must be >= 1, got {self.steps}"),
                (self.rounds >= 1, f"rounds: must be >= 1, got {self.rounds}"),
                (self.batch_size >= 1, f"batch_size: must be >= 1, got {self.batch_size}"),
                (self.eval_repeats >= 1, f"eval_repeats: must be >= 1, got {self.eval_repeats}"),
                (self.eval_examples >= 0, f"eval_examples: must be >= 0 (0 = the whole val split), got {self.eval_examples}"),
                (self.recipe_precision in ("fp32", "bf16"), f"recipe_precision: must be 'fp32' or 'bf16', got {self.recipe_precision!r}"),
                (self.peak_seconds > 0, f"peak_seconds: must be > 0, got {self.peak_seconds}"),
                (self.side_timeout >= 1, f"side_timeout: must be >= 1, got {self.side_timeout}"),
            ],
        )
