"""What one ``invoke bench`` measures: steps, rounds, batch size, evaluation repeats, the step profile."""

from __future__ import annotations

import attrs

from evdata.config import validate_fields


@attrs.frozen
class BenchOptions:
    """Knobs of the side-by-side benchmark (the encoder, data and evspan levers come from settings.toml)."""

    steps: int = 40
    """Optimizer steps each side trains (the same number on every side)."""
    rounds: int = 2
    """Times the tuned recipe and evspan run, alternating (each run in a fresh process)."""
    plain_rounds: int = 1
    """Times the plain recipe runs (0 = not at all); it is 4-5x slower than the other two, so once is the default."""
    batch_size: int = 12
    """Training windows per optimizer step, every side (no gradient accumulation)."""
    eval_examples: int = 300
    """Validation examples both sides evaluate (the first N of the val split; 0 = all of it)."""
    eval_repeats: int = 2
    """Passes each side makes over the evaluation examples with its trained model; the fastest counts.

    One pass takes seconds, so a busy moment of the machine can double it; the fastest of several is
    what the code can do here (every pass is kept in the JSON)."""
    plain_eval_repeats: int = 1
    """Evaluation passes of the plain recipe (its padded fp32 pass is the slowest part of the benchmark)."""
    profile_steps: int = 3
    """Training steps each side profiles with torch.profiler after its timed run (0 = no step profile)."""
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
                (self.plain_rounds >= 0, f"plain_rounds: must be >= 0, got {self.plain_rounds}"),
                (self.plain_eval_repeats >= 1, f"plain_eval_repeats: must be >= 1, got {self.plain_eval_repeats}"),
                (
                    0 <= self.profile_steps < self.steps,
                    f"profile_steps: must be >= 0 and below steps ({self.steps}; one step warms up), got {self.profile_steps}",
                ),
                (self.peak_seconds > 0, f"peak_seconds: must be > 0, got {self.peak_seconds}"),
                (self.side_timeout >= 1, f"side_timeout: must be >= 1, got {self.side_timeout}"),
            ],
        )
