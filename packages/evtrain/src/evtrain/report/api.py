"""The entry point ``invoke report`` calls for a run: build the page of one split, write it atomically.

Search studies are evsearch's files, so their page is evsearch's too (``evsearch.report``); it is
built in the same frame (``evtrain.report.layout``).
"""

from __future__ import annotations

from pathlib import Path

from evdata.atomic import atomic_write_text
from evtrain.report.inputs import ReportError, load_run_inputs
from evtrain.report.page import render_run_page
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


def write_report(
    run: str | Path | None = None,
    study: str | Path | None = None,
    split: str = "test",
    output: str | Path | None = None,
    *,
    data_dir: str | None = None,
    runs_root: Path = RUNS_ROOT,
) -> Path:
    """A run report; ``study`` is refused with how to get one (``evsearch.report.write_report`` takes both).

    ``invoke report`` calls evsearch's ``write_report`` when evsearch is installed, this one otherwise.
    """
    if study is not None:
        raise ReportError(f"{study}: a search study report needs evsearch, which is not installed (pip install -e packages/evsearch)")
    return write_run_report(run, split, output, data_dir=data_dir, runs_root=runs_root)
