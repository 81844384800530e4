"""The ways a training run stops before its end, as typed exceptions callers catch by class."""

from __future__ import annotations

from pathlib import Path


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the batch's examples."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM arrived between batches; a resumable state was saved.

    ``signal`` is the signal's name (``SIGINT``/``SIGTERM``), ``epoch`` (1-based) and ``step`` say where
    training stood, ``run`` is the run directory to resume (``invoke train --resume RUN``).
    """

    def __init__(self, signal: str, epoch: int, step: int, run: Path) -> None:
        self.signal = signal
        self.epoch = epoch
        self.step = step
        self.run = Path(run)
        super().__init__(f"{signal} received at epoch {epoch}, step {step}: state saved. Resume with: invoke train --resume {self.run}")

    @property
    def where(self) -> str:
        """``SIGINT at epoch 2, step 40``: where training stopped, without the resume hint."""
        return f"{self.signal} at epoch {self.epoch}, step {self.step}"
