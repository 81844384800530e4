"""The entry point ``invoke report`` calls: pick run or study, build the page, write it atomically."""

from __future__ import annotations

from pathlib import Path

from evdata.atomic import atomic_write_text
from evtrain.report.inputs import ReportError, load_run_inputs
from evtrain.report.page import render_run_page
from evtrain.report.study import is_study_dir, load_study, render_study_page
from evtrain.runs import RUNS_ROOT, resolve_run


def write_run_report(
    run: str | Path | None = None,
    split: str = "test",
    output: str | Path | None = None,
    *,
    data_dir: str | None = None,
    runs_root: Path = RUNS_ROOT,
) -> Path:
    """Write the report of a run (default: the newest) on ``split``; default output ``<run>/report_<split>.html``."""
    paths = resolve_run(run, runs_root)
    inputs = load_run_inputs(paths, split, data_dir)
    out = Path(output) if output else paths.root / f"report_{split}.html"
    return atomic_write_text(out, render_run_page(inputs))


def write_study_report(study: str | Path, output: str | Path | None = None) -> Path:
    """Write the report of a search study folder; default output ``<study>/report.html``."""
    path = Path(study)
    page = render_study_page(load_study(path))
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
    """A run report, or a study report when ``study`` is given or ``run`` names a study folder."""
    if run and study:
        raise ReportError("pass --run or --study, not both")
    if study is None and run and is_study_dir(Path(run)):
        study = run
    if study is not None:
        return write_study_report(study, output)
    return write_run_report(run, split, output, data_dir=data_dir, runs_root=runs_root)
