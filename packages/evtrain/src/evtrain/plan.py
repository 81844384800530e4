"""The training plan: every micro-batch of a run, in order, with what happens after it.

Computed once before the loop from the settings and the window lengths, so the loop itself has no
flags to combine: after each micro-batch it reads whether an optimizer step, a validation, a
state save or an epoch end follows. The plan is a pure function of its inputs (seeded batch orders),
which is what makes a resumed run train on exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs


@attrs.frozen
class MicroBatch:
    """One forward/backward pass and what follows it."""

    epoch: int
    """0-based epoch."""
    index: int
    """0-based position of this micro-batch in its epoch."""
    windows: tuple[int, ...]
    """Training window indices of the batch."""
    step: int
    """The optimizer step this micro-batch contributes to (1-based global step)."""
    steps: bool
    """An optimizer step follows (the accumulation is complete, or the epoch/plan ends)."""
    validate: bool
    """A validation follows the optimizer step."""
    save_state: bool
    """A resumable state is written after the optimizer step (validation first)."""
    epoch_end: bool
    """The last micro-batch of its epoch."""


def build_plan(
    epoch_batches: Callable[[int], Sequence[Sequence[int]]],
    *,
    epochs: int,
    grad_accum_steps: int,
    max_steps: int = 0,
    eval_every_steps: int = 0,
    save_state_every_steps: int = 0,
) -> tuple[MicroBatch, ...]:
    """Every micro-batch of a run: ``epoch_batches(e)`` gives epoch ``e``'s batches of window indices.

    An optimizer step follows every ``grad_accum_steps`` micro-batches and the last one of an epoch.
    Validation follows the last step of each epoch, every ``eval_every_steps`` steps, and the last step
    of the plan; ``max_steps`` (0 = none) cuts the plan after that step. States are saved every
    ``save_state_every_steps`` steps, at the end of every epoch and at the plan's end (so that a finished
    run can be resumed with more epochs or a higher step cap).
    """
    plan: list[MicroBatch] = []
    step = 0
    for epoch in range(epochs):
        batches = epoch_batches(epoch)
        for index, windows in enumerate(batches):
            last_of_epoch = index + 1 == len(batches)
            steps = (index + 1) % grad_accum_steps == 0 or last_of_epoch
            this_step = step + 1
            capped = bool(max_steps) and steps and this_step >= max_steps
            plan.append(
                MicroBatch(
                    epoch=epoch,
                    index=index,
                    windows=tuple(int(w) for w in windows),
                    step=this_step,
                    steps=steps,
                    validate=steps and (last_of_epoch or capped or _every(this_step, eval_every_steps)),
                    save_state=steps and (last_of_epoch or capped or _every(this_step, save_state_every_steps)),
                    epoch_end=last_of_epoch,
                )
            )
            if steps:
                step = this_step
            if capped:
                return tuple(plan)
    return tuple(plan)


def _every(step: int, every: int) -> bool:
    return bool(every) and step % every == 0


def resume_position(plan: Sequence[MicroBatch], epoch: int, batch_in_epoch: int) -> int:
    """Index in ``plan`` of the first micro-batch not yet trained by a run saved at (``epoch``, ``batch_in_epoch``)."""
    for i, mb in enumerate(plan):
        if (mb.epoch, mb.index) >= (epoch, batch_in_epoch):
            return i
    return len(plan)


def optimizer_steps(plan: Sequence[MicroBatch]) -> int:
    """Optimizer steps the plan takes."""
    return sum(1 for mb in plan if mb.steps)


def validations(plan: Sequence[MicroBatch]) -> int:
    """Validations the plan runs."""
    return sum(1 for mb in plan if mb.validate)
