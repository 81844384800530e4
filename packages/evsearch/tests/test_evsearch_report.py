"""The search study page (``invoke report --study``): trials best first, the best trial, plots, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evdata.config import write_record
from evsearch.records import BestTrial, StudySummary, TrialRecord, read_trials
from evsearch.report import is_study_dir, write_report, write_study_report
from evtrain.report import ReportError
from evtrain.runs import RunError

TRIALS = [
    TrialRecord(
        number=0,
        state="COMPLETE",
        value=41.5,
        duration_seconds=60.0,
        params={"learning_rate": 1e-4},
        val_f1={2: 41.5, 1: 30.25},
        note="baseline: settings.toml values",
    ),
    TrialRecord(
        number=1,
        state="PRUNED",
        value=None,
        duration_seconds=12.0,
        params={"learning_rate": 3e-5},
        val_f1={1: 10.0},
        note="pruned after <b>evaluation</b> 1 & more",
    ),
    TrialRecord(number=2, state="COMPLETE", value=47.25, duration_seconds=58.0, params={"learning_rate": 5e-5}, val_f1={1: 40.0, 2: 47.25}),
]


def _write_study(folder: Path, trials=TRIALS, *, summary: bool = True) -> Path:
    write_record(folder / "trials.json", trials)
    if summary:
        best = BestTrial(number=2, value=47.25, params={"learning_rate": 5e-5, "epochs": 4})
        write_record(
            folder / "summary.json",
            StudySummary(
                study="demo",
                storage="journal file",
                requested_trials=3,
                finished=3,
                states={"COMPLETE": 2, "PRUNED": 1},
                fixed={"epochs": 4},
                best=best,
                trials_file="trials.json",
            ),
        )
    (folder / "optimization_history.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    return folder


def test_trials_file_round_trips_through_its_class(tmp_path):
    _write_study(tmp_path)
    raw = json.loads((tmp_path / "trials.json").read_text())
    assert raw[0]["val_f1"] == {"2": 41.5, "1": 30.25}  # plain JSON for people and jq
    assert read_trials(tmp_path / "trials.json") == TRIALS


def test_study_report_lists_trials_best_first_and_embeds_plots(tmp_path):
    study = _write_study(tmp_path / "search" / "demo")
    assert is_study_dir(study)
    path = write_report(run=study)  # a study folder given as --run is recognised
    assert path == study / "report.html"
    page = path.read_text(encoding="utf-8")
    assert page.index("47.25") < page.index("41.5")
    assert '<th title="params.learning_rate">learning_rate</th>' in page and "PRUNED" in page
    assert "30.25 → 41.5" in page  # validation F1 per evaluation, in order, in one cell
    assert "Best trial #2: value 47.25" in page and "<code>epochs</code>" in page
    assert 'src="data:image/png;base64,iVBORw0KGgo' in page
    assert "&lt;b&gt;evaluation&lt;/b&gt; 1 &amp; more" in page  # notes are text, never markup
    assert "http://" not in page and "https://" not in page


def test_study_without_summary_or_plots(tmp_path):
    study = _write_study(tmp_path, summary=False)
    (study / "optimization_history.png").unlink()
    page = write_study_report(study).read_text(encoding="utf-8")
    assert 'id="best"' not in page and "No PNG plots in the study folder." in page


def test_study_errors_name_the_file_and_the_field(tmp_path):
    with pytest.raises(ReportError, match=r"no trials\.json found"):
        write_report(study=tmp_path)
    with pytest.raises(ReportError, match="study folder not found"):
        write_report(study=tmp_path / "nope")
    study = _write_study(tmp_path / "s")
    with pytest.raises(ReportError, match="not both"):
        write_report(run=study, study=study)
    (study / "trials.json").write_text(json.dumps([{"number": 0, "state": "COMPLETE"}]), encoding="utf-8")
    with pytest.raises(ReportError, match=r"trials\.json: .*\$\[0\]\.value: required field missing"):
        write_report(study=study)
    (study / "trials.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ReportError, match=r"trials\.json: expected a JSON list, got dict"):
        write_report(study=study)


def test_a_run_folder_goes_to_the_run_report(tmp_path):
    # Not a study: evtrain's run report is asked for it, and says what is wrong with the folder.
    with pytest.raises(RunError, match="run directory not found"):
        write_report(run=tmp_path / "nope")
