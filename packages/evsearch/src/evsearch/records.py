"""What a search leaves in its study folder, as ``attrs`` records written and read through the one converter.

| file (in ``<search.root>/<study>/``) | class |
|---|---|
| ``trials.json`` | ``list[TrialRecord]`` (what ``invoke report --study`` shows) |
| ``summary.json`` | ``StudySummary`` |
| ``study.json`` | ``StudyMarker`` (which storage the folder belongs to) |
| ``search.json`` beside the retrained best run | ``RetrainSource`` |

``evdata.config.write_record`` writes them as plain JSON; ``read_record`` reads them back, and a file
that does not match its class is a ``RecordError`` naming the file and the field.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from evdata.config import read_record

TRIALS_JSON = "trials.json"
SUMMARY_JSON = "summary.json"
STUDY_JSON = "study.json"
SEARCH_JSON = "search.json"

ParamValue = float | int | str
"""A trial parameter: learning rate and warm-up ratio are floats, the rest integers (categorical choices)."""


@attrs.frozen
class TrialRecord:
    """One trial of ``trials.json``."""

    number: int
    state: str
    """Optuna's state name: ``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING`` or ``WAITING``."""
    value: float | None
    """The best validation figure (``train.metric``) of a complete trial; None otherwise."""
    duration_seconds: float | None
    params: dict[str, ParamValue]
    """The sampled values (fixed ones are in ``StudySummary.fixed``)."""
    val_f1: dict[int, float]
    """Validation figure per evaluation (1-based; one per epoch by default), as reported to the pruner."""
    note: str = ""
    """Why it was pruned or failed, or that it is the baseline trial."""


@attrs.frozen
class BestTrial:
    """The best complete trial, with every parameter of its run (fixed ones included)."""

    number: int
    value: float
    params: dict[str, ParamValue]


@attrs.frozen
class StudySummary:
    """``summary.json``: counts, the fixed values and the best trial of a search."""

    study: str
    storage: str
    requested_trials: int
    finished: int
    """Complete + pruned trials."""
    states: dict[str, int]
    """Trials per Optuna state name (states with none are left out)."""
    fixed: dict[str, ParamValue]
    best: BestTrial | None
    trials_file: str
    best_run: str | None = None
    """The retrained best run (None when retraining was off or nothing completed)."""


@attrs.frozen
class StudyMarker:
    """``study.json``: the storage a study folder belongs to, so two studies of one name cannot share it."""

    study: str
    storage: str


@attrs.frozen
class RetrainSource:
    """``search.json`` beside the retrained best run: the trial it comes from."""

    study: str
    storage: str
    trial: int
    trial_value: float
    params: dict[str, ParamValue]


def read_trials(path: str | Path) -> list[TrialRecord]:
    """Read ``trials.json``."""
    return read_record(path, list[TrialRecord])


def read_summary(path: str | Path) -> StudySummary:
    """Read ``summary.json``."""
    return read_record(path, StudySummary)
