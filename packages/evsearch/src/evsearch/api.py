"""``run_search``: what ``invoke search`` calls."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import attrs
import optuna
from rich.console import Console
from rich.markup import escape

from evdata.dataset import Dataset
from evsearch import output, space
from evsearch.dataset import load_search_dataset, subsample_train
from evsearch.objective import TrainFn, TrialContext
from evsearch.records import SUMMARY_JSON
from evsearch.retrain import best_record, is_current, retrain_best
from evsearch.settings import SearchSettings
from evsearch.storage import describe_storage
from evsearch.study import SearchError, SearchInterrupted, create_or_load_study, finished_count, run_worker
from evsearch.workers import describe_outcome, run_worker_processes, sampler_salt
from evtrain.errors import TrainingInterrupted
from evtrain.loop import train
from evtrain.runs import RUNS_ROOT
from evtrain.settings import RunSettings


@attrs.frozen
class SearchResult:
    """What a search ended with."""

    study: str
    finished: int
    best_trial: int | None
    best_value: float | None
    best_params: dict[str, Any]
    best_run: Path | None
    """The retrained best run (None when retraining was off or nothing completed)."""
    plots: dict[str, str]


def run_search(
    search: SearchSettings,
    base: RunSettings,
    *,
    console: Console | None = None,
    show_progress: bool = True,
    runs_root: Path = RUNS_ROOT,
    train_fn: TrainFn = train,
    poll_seconds: float = 2.0,
    cache_dir: str | Path | None = None,
) -> SearchResult:
    """Run (or continue) the study until it has ``search.trials`` finished trials, report it, retrain the best.

    ``base`` holds everything not searched; each trial evolves it. One worker runs in this
    process; ``search.workers > 1`` starts that many processes on the same storage. Ctrl-C records
    the running trial(s) as failed (interrupted) and raises ``SearchInterrupted``; running the
    same command again continues the study. ``cache_dir`` is evdata's alignment cache.
    """
    # A log file (nohup, CI) gets a wide console: the trials table is wider than 80 columns.
    console = console or (Console() if sys.stdout.isatty() else Console(width=160))
    show_progress = show_progress and sys.stderr.isatty()  # progress bars only where someone watches them
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if search.workers > 1 and train_fn is not train:
        raise ValueError("a custom train_fn runs in this process only: use workers = 1")
    study, created = create_or_load_study(search, base)
    before = finished_count(study.get_trials(deepcopy=False))
    _print_header(console, search, base, created, before)
    dataset: Dataset | None = None
    try:
        if before < search.trials:
            if search.workers == 1:
                dataset = load_search_dataset(base, cache_dir)
                context = TrialContext(
                    search, base, subsample_train(dataset, search.train_fraction, search.sampler_seed), search.trials_dir, train_fn=train_fn
                )
                run_worker(
                    study,
                    context,
                    search.trials,
                    salt=sampler_salt(search, 0),
                    poll_seconds=poll_seconds,
                    on_outcome=lambda o: console.print(escape(describe_outcome(o))),
                )
            else:
                if cache_dir is not None:
                    # Align once here, so every worker reads the alignment from the cache instead of redoing it.
                    dataset = load_search_dataset(base, cache_dir)
                run_worker_processes(search, base, poll_seconds=poll_seconds, cache_dir=cache_dir)
    except (KeyboardInterrupt, TrainingInterrupted, SearchInterrupted):
        output.print_results(study, search, console)
        raise SearchInterrupted(
            f"search interrupted: the running trial is recorded as failed (interrupted); run the same command to continue study {search.study!r}"
        ) from None
    except SearchError:
        output.print_results(study, search, console)
        raise
    output.print_results(study, search, console)
    plots = output.write_plots(study, search.study_dir)
    for name, where in plots.items():
        console.print(escape(f"{name}: {where}"))
    best_run = None
    has_best = any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
    if search.retrain and has_best:
        if dataset is None and not is_current(Path(search.best_output), best_record(study, search)):
            dataset = load_search_dataset(base, cache_dir)
        retrain_best(study, search, base, dataset, runs_root=runs_root, console=console, show_progress=show_progress)
        best_run = Path(search.best_output)
        console.print(escape(f"best run: {best_run}  (invoke evaluate --run {best_run}; invoke predict --run {best_run} --input FILE)"))
    best = study.best_trial if has_best else None
    result = SearchResult(
        study=search.study,
        finished=finished_count(study.get_trials(deepcopy=False)),
        best_trial=best.number if best else None,
        best_value=best.value if best else None,
        best_params={**space.fixed_values(search), **best.params} if best else {},
        best_run=best_run,
        plots=plots,
    )
    output.write_summary(study, search, search.study_dir, best_run=best_run)
    console.print(escape(f"summary: {search.study_dir / SUMMARY_JSON}"))
    return result


def _print_header(console: Console, search: SearchSettings, base: RunSettings, created: bool, finished: int) -> None:
    state = "new study" if created else f"continuing: {finished} finished trial(s)"
    console.print(
        f"[bold]study {escape(search.study)}[/] ({state}) in {escape(describe_storage(search))}; target {search.trials} finished trials, {search.workers} worker(s)"
    )
    searched = [d for d in space.dimensions(search) if not d.fixed]
    parts = []
    for d in searched:
        if d.kind == "categorical":
            parts.append(f"{d.name} {list(d.choices)}")
        else:
            parts.append(
                f"{d.name} {output.format_value(d.name, d.low)}..{output.format_value(d.name, d.high)}"
                + (" (log)" if d.kind == "log" else "")
            )
    console.print(escape("space: " + "; ".join(parts)))
    fixed = space.fixed_values(search)
    if fixed:
        console.print(escape("fixed: " + ", ".join(f"{k}={output.format_value(k, v)}" for k, v in fixed.items())))
    caps = []
    if search.trial_max_steps:
        caps.append(f"at most {search.trial_max_steps} optimizer steps per trial")
    if search.train_fraction < 1:
        caps.append(f"{search.train_fraction:.0%} of the training posts per trial")
    console.print(
        escape(
            f"pruner: {search.pruner}"
            + (f"; {', '.join(caps)} (the retrained best run uses neither cap)" if caps else "")
            + f"; model {base.model.name}"
        )
    )
