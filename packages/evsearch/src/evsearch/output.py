"""What a search shows and leaves behind: the trials table, the best parameters, plots, a summary file."""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evdata.atomic import atomic_write_bytes
from evdata.config import write_record
from evsearch import space
from evsearch.objective import ATTR_BASELINE, ATTR_REASON
from evsearch.records import SUMMARY_JSON, TRIALS_JSON, BestTrial, StudySummary, TrialRecord
from evsearch.settings import SearchSettings
from evsearch.storage import describe_storage
from evsearch.study import SURPLUS_REASON, finished_count

# Short column headings, so the table fits a terminal (and a log file) of ordinary width.
HEADINGS = {
    "learning_rate": "lr",
    "batch_size": "batch",
    "epochs": "epochs",
    "warmup_ratio": "warmup",
    "max_length": "max_len",
    "doc_stride": "stride",
}
HISTORY_PNG = "optimization_history.png"
IMPORTANCES_PNG = "param_importances.png"


def format_value(name: str, value: Any) -> str:
    """A parameter value as the table shows it (learning rates in scientific notation)."""
    if isinstance(value, float):
        return f"{value:.2e}" if name == "learning_rate" else f"{value:.3g}"
    return str(value)


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m07s``, ``12s`` or ``-``."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _seconds(trial: FrozenTrial) -> float | None:
    d = trial.duration
    return d.total_seconds() if d is not None else None


def trials_table(study: optuna.Study, search: SearchSettings) -> Table:
    """Number, state, parameters, value (best validation F1), duration and a note per trial."""
    trials = study.get_trials(deepcopy=False)
    names = [d.name for d in space.dimensions(search) if not d.fixed]
    best = _best_number(study)
    fixed = space.fixed_values(search)
    caption = "fixed: " + ", ".join(f"{k}={format_value(k, v)}" for k, v in fixed.items()) if fixed else None
    title = f"study {escape(study.study_name)}: {finished_count(trials)} finished of {len(trials)} trials"
    table = Table(title=title, caption=caption)
    table.add_column("#", justify="right")
    table.add_column("state")
    for name in names:
        table.add_column(HEADINGS.get(name, name), justify="right")
    table.add_column("val F1", justify="right")
    table.add_column("duration", justify="right")
    table.add_column("note", overflow="fold", max_width=60)
    for t in trials:
        state = t.state.name + (" *" if t.number == best else "")
        value = f"{t.value:.2f}" if t.value is not None else "-"
        note = str(t.user_attrs.get(ATTR_REASON, ""))
        if t.user_attrs.get(ATTR_BASELINE):
            note = ("baseline: " + str(t.user_attrs[ATTR_BASELINE]) + ("; " + note if note else "")).strip()
        table.add_row(
            str(t.number),
            state,
            *[format_value(n, t.params[n]) if n in t.params else "-" for n in names],
            value,
            format_duration(_seconds(t)),
            note,
        )
    return table


def _best_number(study: optuna.Study) -> int | None:
    try:
        return study.best_trial.number
    except ValueError:  # no complete trial yet
        return None


def print_results(study: optuna.Study, search: SearchSettings, console: Console) -> None:
    """The trials table, then the best trial's parameters (all six, fixed ones included)."""
    console.print(trials_table(study, search))
    counts = {s.name.lower(): sum(t.state == s for t in study.get_trials(deepcopy=False)) for s in TrialState}
    unrun = sum(t.user_attrs.get(ATTR_REASON) == SURPLUS_REASON for t in study.get_trials(deepcopy=False))
    console.print(
        f"complete {counts['complete']}, pruned {counts['pruned']}, failed {counts['fail'] - unrun}"
        + (f" (+{unrun} claimed but not run)" if unrun else "")
        + (f", running {counts['running']}" if counts["running"] else "")
        + f"  —  storage: {escape(describe_storage(search))}"
    )
    best = _best_number(study)
    if best is None:
        console.print("[yellow]no trial completed: no best parameters yet[/]")
        return
    trial = study.best_trial
    values = {**space.fixed_values(search), **trial.params}
    console.print(
        f"best trial {trial.number}: val F1 {trial.value:.2f}  " + "  ".join(f"{k}={format_value(k, v)}" for k, v in values.items())
    )


def write_plots(study: optuna.Study, folder: Path) -> dict[str, str]:
    """Optimisation history and parameter importances as PNGs in ``folder``; returns what was written or why not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done: dict[str, str] = {}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return {HISTORY_PNG: "skipped: no complete trial", IMPORTANCES_PNG: "skipped: no complete trial"}
    plots = {HISTORY_PNG: optuna.visualization.matplotlib.plot_optimization_history}
    varying = {name for name in complete[0].params if len({t.params.get(name) for t in complete}) > 1}
    if len(complete) < 2 or not varying:
        done[IMPORTANCES_PNG] = "skipped: needs at least 2 complete trials whose parameters differ"
    else:
        plots[IMPORTANCES_PNG] = optuna.visualization.matplotlib.plot_param_importances
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the matplotlib backend is marked experimental
                ax = plot(study)
            fig = ax.figure
            fig.set_size_inches(8, 4.5)
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110)
            plt.close(fig)
            atomic_write_bytes(folder / name, buf.getvalue())
            done[name] = str(folder / name)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # importances undefined for this study
            plt.close("all")
            done[name] = f"skipped: {exc}"
    return done


def trial_records(study: optuna.Study) -> list[TrialRecord]:
    """One record per trial: number, state, value, duration, params, validation figure per evaluation, note."""
    return [
        TrialRecord(
            number=t.number,
            state=t.state.name,
            value=t.value,
            duration_seconds=_seconds(t),
            params=dict(t.params),
            val_f1=dict(sorted(t.intermediate_values.items())),
            note=str(t.user_attrs.get(ATTR_REASON, ""))
            or (f"baseline: {t.user_attrs[ATTR_BASELINE]}" if t.user_attrs.get(ATTR_BASELINE) else ""),
        )
        for t in study.get_trials(deepcopy=False)
    ]


def write_summary(study: optuna.Study, search: SearchSettings, folder: Path, *, best_run: Path | None = None) -> Path:
    """``trials.json`` (every trial; what ``invoke report --study`` reads) and ``summary.json`` (counts, the best trial); returns the latter."""
    trials = study.get_trials(deepcopy=False)
    best = _best_number(study)
    fixed = space.fixed_values(search)
    write_record(folder / TRIALS_JSON, trial_records(study))
    summary = StudySummary(
        study=study.study_name,
        storage=describe_storage(search),
        requested_trials=search.trials,
        finished=finished_count(trials),
        states={s.name: n for s in TrialState if (n := sum(t.state == s for t in trials))},
        fixed=fixed,
        best=None if best is None else BestTrial(best, study.best_trial.value, {**fixed, **study.best_trial.params}),
        trials_file=TRIALS_JSON,
        best_run=str(best_run) if best_run else None,
    )
    return write_record(folder / SUMMARY_JSON, summary)
