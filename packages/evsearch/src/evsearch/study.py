"""The study: storage, sampler and pruner; the worker loop that runs trials until the study has enough.

Every worker (a process on this machine, or the same command on another machine against one
database) runs the same loop: count the finished trials (complete + pruned); stop when the study
has the requested number; wait while the running ones could still get it there; else claim a new
trial. Two workers may claim at the same moment; the trial with the higher number then sees that
the lower-numbered trials already fill the study and ends unrun (FAILED, reason ``not run: ...``),
so the study never finishes more trials than requested and none runs twice.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import optuna
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from evdata.config import RecordError, read_record, write_record
from evsearch import space
from evsearch.objective import ATTR_BASELINE, ATTR_REASON, ATTR_WORKER, TrialContext, TrialOutcome, deferred_interrupts, run_trial
from evsearch.records import STUDY_JSON, StudyMarker
from evsearch.settings import SearchSettings
from evsearch.storage import GRACE_SECONDS, describe_storage, open_storage
from evtrain.runs import RunError
from evtrain.settings import RunSettings

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# A RUNNING trial that never got its worker attribute this long after it started was orphaned at birth.
ORPHAN_SECONDS = 600
SURPLUS_REASON = "not run: the study already had its requested trials running or finished (another worker claimed the last one)"


class SearchError(RunError):
    """The search cannot go on (too many failed trials, a study that is not ours); the message says why."""


class SearchInterrupted(RunError):
    """Ctrl-C (or SIGTERM) stopped the search; the running trials are recorded as failed (interrupted).

    Running the same command again continues the study.
    """


@attrs.frozen
class WorkerReport:
    """What one worker did."""

    outcomes: tuple[TrialOutcome, ...]
    finished: int
    """Finished trials in the study when the worker stopped."""


# -- sampler, pruner ----------------------------------------------------------------


def make_sampler(search: SearchSettings, salt: str) -> optuna.samplers.TPESampler:
    """A TPE sampler seeded from ``sampler_seed`` and ``salt``.

    A fresh sampler per trial, seeded by the trial count, keeps a resumed study from replaying the
    random start-up values of the first run, and workers that differ in ``salt`` from proposing the
    same values at the same moment.
    """
    digest = hashlib.sha256(f"{search.sampler_seed}:{salt}".encode()).digest()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=int.from_bytes(digest[:4], "little"), n_startup_trials=search.startup_trials, constant_liar=True
        )


def make_pruner(search: SearchSettings, base: RunSettings) -> optuna.pruners.BasePruner:
    """The pruner of ``search.pruner``; trials report once per evaluation (once per epoch by default)."""
    if search.pruner == "hyperband":
        # With per-epoch evaluation the resource is the epoch, so the largest is epochs_max.
        max_resource: int | str = search.epochs_max if base.train.eval_every_steps == 0 else "auto"
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_resource, reduction_factor=3)
    if search.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=search.median_startup_trials, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


# -- the study -------------------------------------------------------------------------------


def create_or_load_study(search: SearchSettings, base: RunSettings) -> tuple[optuna.Study, bool]:
    """Open the study (creating it, and its baseline trial, the first time); returns it and whether it is new."""
    storage = open_storage(search)
    _claim_study_dir(search)
    pruner = make_pruner(search, base)
    try:
        study = optuna.create_study(
            storage=storage, study_name=search.study, direction="maximize", pruner=pruner, sampler=make_sampler(search, "0")
        )
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(storage=storage, study_name=search.study, pruner=pruner, sampler=make_sampler(search, "0"))
        created = False
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise SearchError(
            f"study {search.study!r} in {describe_storage(search)} minimises; evsearch maximises validation F1: pick another --study"
        )
    if created and search.baseline_trial:
        params, outside = space.baseline_params(search, base)
        note = "settings.toml values" + (f" ({', '.join(outside)} outside the space: sampled)" if outside else "")
        study.enqueue_trial(params, user_attrs={ATTR_BASELINE: note})
    return study, created


def load_study(search: SearchSettings, base: RunSettings) -> optuna.Study:
    """Open an existing study (what each worker process does)."""
    return optuna.load_study(
        storage=open_storage(search), study_name=search.study, pruner=make_pruner(search, base), sampler=make_sampler(search, "0")
    )


def _claim_study_dir(search: SearchSettings) -> None:
    """Tie ``<root>/<study>/`` to one storage, so two studies of the same name cannot mix their trial folders."""
    marker = search.study_dir / STUDY_JSON
    where = describe_storage(search)
    if marker.is_file():
        try:
            recorded = read_record(marker, StudyMarker)
        except RecordError as exc:
            raise SearchError(f"{exc}: pass --study with another name (or remove {search.study_dir})") from None
        if recorded.storage != where:
            raise SearchError(
                f"{search.study_dir} holds study {search.study!r} of {recorded.storage}, not of {where}: "
                f"pass --study with another name (or remove {search.study_dir})"
            )
        return
    write_record(marker, StudyMarker(study=search.study, storage=where))


def finished_count(trials: list[FrozenTrial]) -> int:
    """Complete + pruned trials."""
    return sum(t.state in FINISHED for t in trials)


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials whose worker is gone: a process of this machine that no longer exists, or a silent heartbeat.

    Returns the numbers of the trials failed here.
    """
    import psutil

    failed = []
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(t.user_attrs.get(ATTR_WORKER, ""))
        name, _, rest = owner.partition(":")
        pid, _, started = rest.partition(":")
        if not owner:
            # The worker attribute is written right after the trial is claimed; without it after minutes,
            # the claiming process died in between.
            started_at = t.datetime_start or datetime.datetime.now()
            if (datetime.datetime.now() - started_at).total_seconds() > ORPHAN_SECONDS and _fail(
                study, t, f"claimed but never started by its worker (no worker recorded after {ORPHAN_SECONDS // 60} minutes)"
            ):
                failed.append(t.number)
            continue
        if name != host or not pid.isdigit():
            continue
        try:
            alive = int(psutil.Process(int(pid)).create_time()) == int(started or 0)
        except psutil.Error:
            alive = False
        if not alive and _fail(study, t, f"its worker process ({owner}) ended without recording a result"):
            failed.append(t.number)
    storage = study._storage
    if _heartbeat_interval(study):
        # Optuna's own fail_stale_trials would fail them without a reason; the reason goes first here.
        by_id = {t._trial_id: t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        for trial_id in storage._get_stale_trial_ids(study._study_id):
            t = by_id.get(trial_id)
            if t is not None and _fail(
                study, t, f"no heartbeat from its worker ({t.user_attrs.get(ATTR_WORKER, 'unknown')}) for {GRACE_SECONDS} s"
            ):
                failed.append(t.number)
    return failed


def _fail(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    try:
        study._storage.set_trial_user_attr(trial._trial_id, ATTR_REASON, reason)
        return study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:  # another worker finished or failed it first
        return False


def _heartbeat_interval(study: optuna.Study) -> int | None:
    storage = study._storage
    return storage.get_heartbeat_interval() if isinstance(storage, BaseHeartbeat) else None


@contextlib.contextmanager
def _heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Record the trial's heartbeat every few seconds while it runs (RDB storages), so other workers know it is alive."""
    interval = _heartbeat_interval(study)
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            # A database hiccup is survived: the next beat retries, and the grace period spans several beats.
            with contextlib.suppress(Exception):
                study._storage.record_heartbeat(trial._trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-trial-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _claim(study: optuna.Study, target: int) -> tuple[optuna.Trial, bool]:
    """Ask for a trial; end it unrun (and say so) if lower-numbered trials already fill the study.

    Ctrl-C is held until the claim is settled, and a claimed trial it interrupts is failed, so no
    trial is ever left RUNNING without a worker.
    """
    trial = None
    try:
        with deferred_interrupts():
            with warnings.catch_warnings():
                # Optuna expects heartbeats only under Study.optimize; this loop records them itself (_heartbeat).
                warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
                trial = study.ask()
            surplus = is_surplus(study, trial, target)
            if surplus:
                trial.set_user_attr(ATTR_REASON, SURPLUS_REASON)
                study.tell(trial, state=TrialState.FAIL)
    except KeyboardInterrupt:
        if trial is not None:
            _fail(study, study._storage.get_trial(trial._trial_id), "interrupted before it started")
        raise
    return trial, surplus


def is_surplus(study: optuna.Study, trial: optuna.Trial, target: int) -> bool:
    """True when the trials numbered below ``trial`` (finished, running or waiting) already reach ``target``."""
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    earlier = [t for t in study.get_trials(deepcopy=False, states=live) if t.number < trial.number]
    return len(earlier) >= target


# -- the worker loop -------------------------------------------------------------------------


def run_worker(
    study: optuna.Study,
    context: TrialContext,
    target: int,
    *,
    salt: str = "",
    poll_seconds: float = 2.0,
    on_outcome: Callable[[TrialOutcome], Any] | None = None,
) -> WorkerReport:
    """Run trials until the study has ``target`` finished trials (complete + pruned).

    Failed trials do not count, so a failure is replaced by another trial. Raises ``SearchError``
    after ``max_failed_trials`` failures of this worker; Ctrl-C records the current trial as
    failed (interrupted) and propagates.
    """
    outcomes: list[TrialOutcome] = []
    failures = 0
    while True:
        fail_dead_trials(study)
        trials = study.get_trials(deepcopy=False)
        finished = finished_count(trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if finished >= target:
            return WorkerReport(tuple(outcomes), finished)
        if finished + running >= target:
            # The running trials may still get the study there; if one fails, its slot opens again.
            time.sleep(poll_seconds)
            continue
        study.sampler = make_sampler(context.search, f"{len(trials)}:{salt}")
        trial, surplus = _claim(study, target)
        if surplus:
            continue
        with _heartbeat(study, trial):
            outcome = run_trial(study, trial, context)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
        if outcome.state == TrialState.FAIL:
            failures += 1
            if failures >= context.search.max_failed_trials:
                raise SearchError(
                    f"{failures} trials failed in this worker (search.max_failed_trials); the last one, trial {outcome.number}: {outcome.reason}"
                )
