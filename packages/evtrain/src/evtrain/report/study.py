"""The search study page: the trials table (trials.json or trials.csv) and every plot in the folder."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import attrs

from evtrain.report.inputs import ReportError, read_json
from evtrain.report.markup import esc, png_data_uri, tag
from evtrain.report.page import document, page_header

TRIALS_FILES = ("trials.json", "trials.csv")
# Columns shown first when present; the rest follow in file order.
LEADING_COLUMNS = ("number", "state", "value", "duration_seconds")


@attrs.frozen
class StudyInputs:
    """A study folder's trials (one flat dict per trial) and its PNG plots."""

    name: str
    columns: tuple[str, ...]
    trials: tuple[dict[str, Any], ...]
    plots: tuple[tuple[str, bytes], ...]
    trials_path: str
    summary: dict[str, Any] = attrs.field(factory=dict)
    """summary.json of the search (best trial, counts), when the folder has one."""


def is_study_dir(path: Path) -> bool:
    """Whether ``path`` looks like a search study folder (a trials table, no run settings)."""
    return path.is_dir() and not (path / "settings.toml").is_file() and any((path / name).is_file() for name in TRIALS_FILES)


def _series(values: dict[str, Any]) -> str:
    """``{"1": 31.0, "2": 48.5}`` (a value per epoch) as ``31 → 48.5``."""
    return " → ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for _, v in sorted(values.items(), key=lambda kv: int(kv[0])))


def _flatten(trial: dict[str, Any]) -> dict[str, Any]:
    """Nested objects become ``outer.inner`` columns; a per-step mapping (digit keys) one ``a → b → c`` cell."""
    flat: dict[str, Any] = {}
    for key, value in trial.items():
        if isinstance(value, dict) and value and all(str(k).isdigit() for k in value):
            flat[key] = _series(value)
        elif isinstance(value, dict):
            flat.update({f"{key}.{inner}": v for inner, v in value.items()})
        else:
            flat[key] = value
    return flat


def _read_trials(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".json":
        raw = read_json(path)
        if isinstance(raw, dict) and isinstance(raw.get("trials"), list):
            raw = raw["trials"]
        if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
            raise ReportError(f"{path}: expected a JSON list of trial objects")
        return [_flatten(t) for t in raw]
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return [dict(row) for row in csv.DictReader(fh)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ReportError(f"{path}: unreadable CSV ({exc})") from None


def _value(trial: dict[str, Any]) -> float | None:
    try:
        value = float(trial.get("value"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def load_study(path: Path) -> StudyInputs:
    """Read a study folder: its trials table (best value first) and its ``*.png`` plots (by name)."""
    if not path.is_dir():
        raise ReportError(f"study folder not found: {path}")
    found = [path / name for name in TRIALS_FILES if (path / name).is_file()]
    if not found:
        raise ReportError(f"{path}: no {' or '.join(TRIALS_FILES)} found; is this a search study folder (artifacts/search/<study>)?")
    trials = _read_trials(found[0])
    columns: dict[str, None] = {c: None for c in LEADING_COLUMNS if any(c in t for t in trials)}
    for t in trials:
        columns.update(dict.fromkeys(t))
    # Best trial first (the search maximises validation F1); trials without a value go last.
    ordered = sorted(trials, key=lambda t: (_value(t) is None, -(_value(t) or 0.0)))
    plots = tuple((p.stem, p.read_bytes()) for p in sorted(path.glob("*.png")))
    summary = read_json(path / "summary.json") if (path / "summary.json").is_file() else {}
    if not isinstance(summary, dict):
        raise ReportError(f"{path / 'summary.json'}: expected a JSON object")
    return StudyInputs(path.resolve().name, tuple(columns), tuple(ordered), plots, str(found[0]), summary)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


def _best_card(summary: dict[str, Any]) -> str:
    """The best trial's value and parameters from summary.json (empty when there is none)."""
    best = summary.get("best")
    if not isinstance(best, dict):
        return ""
    params = best.get("params") if isinstance(best.get("params"), dict) else {}
    rows = "".join(tag("tr", tag("td", tag("code", esc(k))) + tag("td", esc(_cell(v)), class_="num")) for k, v in params.items())
    head = f"Best trial #{_cell(best.get('number'))}: value {_cell(best.get('value'))}"
    table = tag("table", tag("tbody", rows), style="max-width:520px") if rows else ""
    return tag("section", tag("h2", "Best trial") + tag("div", tag("h3", esc(head)) + table, class_="card"), id="best")


def render_study_page(study: StudyInputs) -> str:
    """The study report as a self-contained HTML page."""
    values = [v for v in (_value(t) for t in study.trials) if v is not None]
    states: dict[str, int] = {}
    for t in study.trials:
        states[str(t.get("state", "?"))] = states.get(str(t.get("state", "?")), 0) + 1
    chips = [(f"{n} {state.lower()}", False) for state, n in sorted(states.items())]
    header = page_header(
        f"Search study · {study.name}",
        f"{len(study.trials)} trials · best value {max(values):.4g}" if values else f"{len(study.trials)} trials",
        chips,
        (("trials", "Trials"), ("plots", "Plots")),
    )
    # Parameters are the bulk of the columns; their "params." prefix only adds width.
    head = "".join(
        tag("th", esc(c.removeprefix("params.")), class_="num" if c in ("number", "value", "duration_seconds") else None, title=c)
        for c in study.columns
    )
    best = study.trials[0] if values else None
    rows = "".join(
        tag(
            "tr",
            "".join(
                tag("td", esc(_cell(t.get(c))), class_="num" if c in ("number", "value", "duration_seconds") else "nowrap")
                for c in study.columns
            ),
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
