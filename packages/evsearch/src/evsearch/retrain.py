"""The best trial retrained as a normal run (full epochs, every training post, no pruning) in ``artifacts/optuna_best/``."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
from rich.console import Console
from rich.markup import escape

from evdata.config import RecordError, read_record, write_record
from evdata.dataset import Dataset
from evsearch import space
from evsearch.records import SEARCH_JSON, RetrainSource
from evsearch.settings import SearchSettings
from evsearch.storage import describe_storage
from evtrain.loop import RunResult, train
from evtrain.runs import RUNS_ROOT, RunPaths, new_run, update_latest
from evtrain.settings import RunSettings
from evtrain.summary import print_run_summary


def best_settings(study: optuna.Study, search: SearchSettings, base: RunSettings) -> RunSettings:
    """``base`` with the best trial's values (and the fixed ones); no per-trial step cap."""
    return space.apply(base, {**space.fixed_values(search), **study.best_trial.params})


def best_record(study: optuna.Study, search: SearchSettings) -> RetrainSource:
    """Which trial a retrained run comes from (stored beside it as search.json)."""
    trial = study.best_trial
    return RetrainSource(
        study=study.study_name,
        storage=describe_storage(search),
        trial=trial.number,
        trial_value=trial.value,
        params={**space.fixed_values(search), **trial.params},
    )


def is_current(output: Path, record: RetrainSource) -> bool:
    """True when ``output`` already holds a finished retrain of this very trial."""
    marker = output / SEARCH_JSON
    if not (marker.is_file() and (output / "metrics.json").is_file() and (output / "model").is_dir()):
        return False
    try:
        return read_record(marker, RetrainSource) == record
    except RecordError:  # unreadable or from another version: retrain rather than trust it
        return False


def retrain_best(
    study: optuna.Study,
    search: SearchSettings,
    base: RunSettings,
    dataset: Dataset | None,
    *,
    runs_root: Path = RUNS_ROOT,
    console: Console | None = None,
    show_progress: bool = True,
) -> RunResult | None:
    """Train the best trial's settings into ``search.best_output`` and point ``runs/latest`` at it.

    Returns None when that folder already holds this trial's retrain. A previous best run is kept
    until the new one has finished, and put back if training fails or is interrupted.
    """
    console = console or Console()
    output = Path(search.best_output)
    record = best_record(study, search)
    if is_current(output, record):
        console.print(escape(f"{output} already holds the retrained trial {record.trial}: nothing to retrain"))
        return None
    if dataset is None:
        raise ValueError("retrain_best needs the dataset unless the output already holds this trial's retrain")
    settings = best_settings(study, search, base)
    console.print(escape(f"retraining trial {record.trial} ({settings.train.epochs} epochs, all training posts, no pruning) into {output}"))
    previous = output.with_name(output.name + ".previous")
    if previous.exists():
        shutil.rmtree(previous)
    if output.exists():
        output.rename(previous)
    try:
        run = new_run(output)
        result = train(settings, dataset, run, show_progress=show_progress)
        write_record(output / SEARCH_JSON, record)
    except BaseException:
        shutil.rmtree(output, ignore_errors=True)
        if previous.exists():
            previous.rename(output)
        raise
    shutil.rmtree(previous, ignore_errors=True)
    update_latest(RunPaths(output), runs_root)
    print_run_summary(result.metrics, str(output), console)
    return result
