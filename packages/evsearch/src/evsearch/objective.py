"""One trial: an evtrain run built from the trial's values, reported to the pruner, recorded in the study."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import optuna
from optuna.trial import TrialState

from evdata.dataset import Dataset
from evsearch import space
from evsearch.settings import SearchSettings
from evtrain.errors import TrainingInterrupted
from evtrain.loop import EvaluationHook, RunResult, train
from evtrain.records import EvaluationReport
from evtrain.runs import RunPaths, new_run
from evtrain.settings import RunSettings

# What a trial calls to train: evtrain.loop.train, or a stand-in with the same signature in tests.
TrainFn = Callable[..., RunResult]

# Trial user attributes (what the trials table and a later resumption read back).
ATTR_REASON = "reason"
ATTR_WORKER = "worker"
ATTR_RUN_DIR = "run_dir"
ATTR_BASELINE = "baseline"
# Kept in the journal and the database, so bounded: a traceback does not belong there.
_REASON_LIMIT = 500


@attrs.frozen
class TrialContext:
    """What every trial of one worker shares: settings, the (trial) dataset, where runs go."""

    search: SearchSettings
    base: RunSettings
    dataset: Dataset
    trials_dir: Path
    threads: int = 0
    """torch threads per trial (0 = the [train] setting); several workers on one machine split the cores."""
    train_fn: TrainFn = train


@attrs.frozen
class TrialOutcome:
    """How one trial ended, as recorded in the study."""

    number: int
    state: TrialState
    value: float | None
    reason: str
    seconds: float


def worker_id() -> str:
    """``host:pid:start`` of this process, so a trial left RUNNING by a dead worker can be recognised."""
    import psutil

    return f"{socket.gethostname()}:{os.getpid()}:{int(psutil.Process().create_time())}"


def trial_settings(context: TrialContext, values: dict[str, Any]) -> RunSettings:
    """The run settings of a trial: base settings, the trial's values, the per-trial step cap."""
    settings = space.apply(context.base, values)
    caps = [c for c in (context.search.trial_max_steps, settings.train.max_steps) if c]
    return attrs.evolve(
        settings,
        train=attrs.evolve(
            settings.train,
            max_steps=min(caps) if caps else 0,
            # A trial's state is only ever resumed as a new trial, so mid-epoch saves would be wasted writes.
            save_state_every_steps=0,
            num_threads=context.threads or settings.train.num_threads,
        ),
    )


def pruning_hook(trial: optuna.Trial, metric: str, epochs: int) -> EvaluationHook:
    """Report the validation ``metric`` after every evaluation; raise ``TrialPruned`` when the pruner says so.

    The step reported to Optuna is the evaluation's 1-based index (the epoch, with per-epoch
    evaluation). The last evaluation of a run is reported but never pruned: the work is done by
    then, and a trial that trained to its end is complete (Hyperband would otherwise judge it at its
    top rung). ``epochs`` is the trial's epoch count, for the messages.
    """

    def hook(report: EvaluationReport) -> None:
        if not math.isfinite(report.value):
            raise FloatingPointError(f"validation {metric} is {report.value} at evaluation {report.index}")
        trial.report(report.value, report.index)
        if not report.last and trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned after evaluation {report.index} (epoch {report.epoch} of {epochs}): val {metric} {report.value:.2f}"
            )

    return hook


def run_trial(study: optuna.Study, trial: optuna.Trial, context: TrialContext) -> TrialOutcome:
    """Train one trial and record how it ended: COMPLETE with its best validation value, PRUNED, or FAILED with the reason.

    A raised exception (a non-finite loss included) fails only this trial. Ctrl-C (or SIGTERM)
    fails it as ``interrupted``, records that, and is re-raised so the search stops.
    """
    started = time.monotonic()
    run_dir = context.trials_dir / str(trial.number)
    state, value, reason = TrialState.FAIL, None, ""
    interrupted: BaseException | None = None
    try:
        trial.set_user_attr(ATTR_WORKER, worker_id())
        trial.set_user_attr(ATTR_RUN_DIR, str(run_dir))
        settings = trial_settings(context, space.suggest(trial, context.search))
        run = _fresh_run(run_dir)
        result = context.train_fn(
            settings,
            context.dataset,
            run,
            on_evaluation=pruning_hook(trial, settings.train.metric, settings.train.epochs),
            evaluate_test=False,
            show_progress=False,
        )
        value = result.best_value
        if not math.isfinite(value):
            raise FloatingPointError(f"best validation {settings.train.metric} is {value} (no finite evaluation)")
        state = TrialState.COMPLETE
    except optuna.TrialPruned as exc:
        state, reason = TrialState.PRUNED, str(exc)
    except TrainingInterrupted as exc:
        # Where training stopped, without evtrain's resume hint: a search resumes the study, not the trial's run.
        interrupted, reason = exc, f"interrupted: {exc.where}"
    except KeyboardInterrupt as exc:
        interrupted, reason = exc, "interrupted (Ctrl-C)"
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
    with deferred_interrupts():
        if not context.search.keep_trial_models:
            _drop_weights(run_dir)
        if reason:
            trial.set_user_attr(ATTR_REASON, _one_line(reason))
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    outcome = TrialOutcome(trial.number, state, value, _one_line(reason), time.monotonic() - started)
    if interrupted is not None:
        raise interrupted
    return outcome


def _fresh_run(path: Path) -> RunPaths:
    # Trial numbers belong to the study, so anything already here is left over from a deleted study
    # of the same name (its journal or database removed): it describes no trial of this one.
    if path.exists():
        shutil.rmtree(path)
    return new_run(path)


def _drop_weights(run_dir: Path) -> None:
    """Remove a finished trial's checkpoint and training state (hundreds of MB each); keep its record."""
    for name in ("model", "state"):
        shutil.rmtree(run_dir / name, ignore_errors=True)


def _one_line(text: str) -> str:
    flat = " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return flat if len(flat) <= _REASON_LIMIT else flat[: _REASON_LIMIT - 1] + "…"


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while a trial's outcome is written, so a second Ctrl-C cannot leave it RUNNING."""
    received: list[int] = []
    previous: dict[int, Any] = {}

    def hold(signum: int, _frame: Any) -> None:
        if previous.get(signum) is not signal.SIG_IGN:  # a background job ignores Ctrl-C: keep it so
            received.append(signum)

    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, hold)
    except ValueError:  # not the main thread: signals cannot be touched here
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise KeyboardInterrupt
