"""The search study page (``invoke report --study DIR``): every trial of trials.json, the best trial, every plot.

The page is built in evtrain's report frame (``evtrain.report.layout``), so a study page and a run
page look alike; ``write_report`` is what ``invoke report`` calls, a run or a study.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import attrs

from evdata.atomic import atomic_write_text
from evsearch.records import SUMMARY_JSON, TRIALS_JSON, StudySummary, TrialRecord
from evtrain.report import ReportError, write_run_report
from evtrain.report.inputs import read_typed
from evtrain.report.layout import document, page_header
from evtrain.report.markup import esc, png_data_uri, tag
from evtrain.runs import RUNS_ROOT

NUMERIC = ("number", "value", "duration_seconds")


@attrs.frozen
class StudyInputs:
    """A study folder's trials (best value first), its summary and its PNG plots."""

    name: str
    trials: tuple[TrialRecord, ...]
    plots: tuple[tuple[str, bytes], ...]
    trials_path: str
    summary: StudySummary | None = None
    """summary.json of the search (best trial, counts), when the folder has one."""


@attrs.frozen
class Column:
    """A column of the trials table: its key (the heading's title), heading and cell text per trial."""

    key: str
    heading: str
    cell: Callable[[TrialRecord], str]


def is_study_dir(path: Path) -> bool:
    """Whether ``path`` looks like a search study folder (a trials.json, no run settings)."""
    return path.is_dir() and not (path / "settings.toml").is_file() and (path / TRIALS_JSON).is_file()


def _value(trial: TrialRecord) -> float | None:
    return trial.value if trial.value is not None and math.isfinite(trial.value) else None


def load_study_inputs(path: Path) -> StudyInputs:
    """Read a study folder: trials.json (best value first), summary.json when present, and its ``*.png`` plots (by name)."""
    if not path.is_dir():
        raise ReportError(f"study folder not found: {path}")
    trials_path = path / TRIALS_JSON
    if not trials_path.is_file():
        raise ReportError(f"{path}: no {TRIALS_JSON} found; is this a search study folder (artifacts/search/<study>)?")
    trials: list[TrialRecord] = read_typed(trials_path, list[TrialRecord])
    # Best trial first (the search maximises the validation figure); trials without a value go last.
    ordered = sorted(trials, key=lambda t: (_value(t) is None, -(_value(t) or 0.0)))
    plots = tuple((p.stem, p.read_bytes()) for p in sorted(path.glob("*.png")))
    summary = read_typed(path / SUMMARY_JSON, StudySummary) if (path / SUMMARY_JSON).is_file() else None
    return StudyInputs(path.resolve().name, tuple(ordered), plots, str(trials_path), summary)


def _number(value: float | int | str | None) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _series(values: dict[int, float]) -> str:
    """The validation figure per evaluation, in order: ``31 → 48.5``."""
    return " → ".join(f"{v:.4g}" for _, v in sorted(values.items()))


def columns(trials: tuple[TrialRecord, ...]) -> list[Column]:
    """Number, state, value, duration, one column per parameter (in order of first appearance), the series, the note."""
    params = list(dict.fromkeys(name for t in trials for name in t.params))
    return [
        Column("number", "number", lambda t: str(t.number)),
        Column("state", "state", lambda t: t.state),
        Column("value", "value", lambda t: _number(t.value)),
        Column("duration_seconds", "duration_seconds", lambda t: _number(t.duration_seconds)),
        # Parameters are the bulk of the columns; their "params." prefix only adds width.
        *(Column(f"params.{name}", name, lambda t, name=name: _number(t.params.get(name))) for name in params),
        Column("val_f1", "val_f1", lambda t: _series(t.val_f1)),
        Column("note", "note", lambda t: t.note),
    ]


def _best_card(summary: StudySummary | None) -> str:
    """The best trial's value and parameters from summary.json (empty when there is none)."""
    if summary is None or summary.best is None:
        return ""
    best = summary.best
    rows = "".join(tag("tr", tag("td", tag("code", esc(k))) + tag("td", esc(_number(v)), class_="num")) for k, v in best.params.items())
    head = f"Best trial #{best.number}: value {_number(best.value)}"
    table = tag("table", tag("tbody", rows), style="max-width:520px") if rows else ""
    return tag("section", tag("h2", "Best trial") + tag("div", tag("h3", esc(head)) + table, class_="card"), id="best")


def render_study_page(study: StudyInputs) -> str:
    """The study report as a self-contained HTML page."""
    values = [v for v in (_value(t) for t in study.trials) if v is not None]
    states: dict[str, int] = {}
    for t in study.trials:
        states[t.state] = states.get(t.state, 0) + 1
    chips = [(f"{n} {state.lower()}", False) for state, n in sorted(states.items())]
    header = page_header(
        f"Search study · {study.name}",
        f"{len(study.trials)} trials · best value {max(values):.4g}" if values else f"{len(study.trials)} trials",
        chips,
        (("trials", "Trials"), ("plots", "Plots")),
    )
    cols = columns(study.trials)
    head = "".join(tag("th", esc(c.heading), class_="num" if c.key in NUMERIC else None, title=c.key) for c in cols)
    best = study.trials[0] if values else None
    rows = "".join(
        tag(
            "tr",
            "".join(tag("td", esc(c.cell(t)), class_="num" if c.key in NUMERIC else "nowrap") for c in cols),
            class_="model" if t is best else None,
        )
        for t in study.trials
    )
    note = f"From {Path(study.trials_path).name}; best value first (bold), trials without a value last."
    table = tag(
        "div",
        tag("p", esc(note), class_="note")
        + tag("div", tag("table", tag("thead", tag("tr", head)) + tag("tbody", rows)), style="overflow-x:auto"),
        class_="card",
    )
    if study.plots:
        plots = "".join(
            tag(
                "div",
                tag("figure", f'<img alt="{esc(name)}" src="{png_data_uri(data)}">' + tag("figcaption", esc(name.replace("_", " ")))),
                class_="card",
            )
            for name, data in study.plots
        )
    else:
        plots = tag("p", "No PNG plots in the study folder.", class_="note")
    body = (
        _best_card(study.summary)
        + tag("section", tag("h2", "Trials") + table, id="trials")
        + tag("section", tag("h2", "Plots") + plots, id="plots")
    )
    return document(f"Search study · {study.name}", header, body)


def write_study_report(study: str | Path, output: str | Path | None = None) -> Path:
    """Write the report of a search study folder; default output ``<study>/report.html``."""
    path = Path(study)
    page = render_study_page(load_study_inputs(path))
    return atomic_write_text(Path(output) if output else path / "report.html", page)


def write_report(
    run: str | Path | None = None,
    study: str | Path | None = None,
    split: str = "test",
    output: str | Path | None = None,
    *,
    data_dir: str | None = None,
    runs_root: Path = RUNS_ROOT,
) -> Path:
    """A run report (evtrain's), or a study report when ``study`` is given or ``run`` names a study folder."""
    if run and study:
        raise ReportError("pass --run or --study, not both")
    if study is None and run and is_study_dir(Path(run)):
        study = run
    if study is not None:
        return write_study_report(study, output)
    return write_run_report(run, split, output, data_dir=data_dir, runs_root=runs_root)
