"""The ``[search]`` table of settings.toml: the study, its storage, the pruner and the search space."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs
from attrs.validators import ge, gt, le, lt

from evdata.config import evolve_sections, load_sections, validate_fields
from evtrain.settings import ALL_SECTIONS

Pruner = Literal["hyperband", "median", "none"]


@attrs.frozen
class SearchSettings:
    """How many trials, where they are stored, how they are pruned, and the space they sample.

    A range is fixed by giving the same bound twice (``epochs_min = epochs_max = 2``), a list by
    giving one value; fixed values are applied to every trial and not sampled.
    """

    trials: int = attrs.field(default=20, validator=ge(1))
    """Finished trials (complete + pruned) the study should reach; rerunning the command continues the study."""
    study: str = "evspan"
    """Study name; also the folder ``artifacts/search/<study>/`` holding trial runs and plots."""
    storage: str = ""
    """Optuna storage: empty = a journal file ``artifacts/search/<study>/journal.log``; an RDB URL
    (``sqlite:///x.db``, ``postgresql://user:pw@host/db``, ``mysql://...``); or a path to a journal file."""
    workers: int = attrs.field(default=1, validator=ge(1))
    """Worker processes on this machine, all against the same storage."""
    sampler_seed: int = 0
    """Seed of the TPE sampler (each trial's sampler is seeded from it and the trial number)."""
    startup_trials: int = attrs.field(default=5, validator=ge(0))
    """Random trials before TPE starts modelling the results."""
    pruner: Pruner = "hyperband"
    """``hyperband``, ``median`` or ``none``; trials report validation F1 after every epoch."""
    median_startup_trials: int = attrs.field(default=3, validator=ge(0))
    """Median pruner: trials that run to the end before any is pruned."""
    baseline_trial: bool = True
    """Make the first trial of a new study the [train]/[features] values of settings.toml (those inside the space)."""

    learning_rate_min: float = attrs.field(default=2e-5, validator=[gt(0), lt(1)])
    learning_rate_max: float = attrs.field(default=5e-4, validator=[gt(0), lt(1)])
    """Learning rate, sampled on a log scale."""
    batch_size: tuple[int, ...] = (8, 16, 32)
    """Train batch sizes to choose from."""
    epochs_min: int = attrs.field(default=1, validator=ge(1))
    epochs_max: int = 3
    doc_stride: tuple[int, ...] = (64, 128)
    """Window overlaps to choose from (each must be below half of the smallest max_length)."""
    max_length: tuple[int, ...] = (320, 384)
    """Window lengths to choose from."""
    warmup_ratio_min: float = attrs.field(default=0.0, validator=[ge(0), lt(1)])
    warmup_ratio_max: float = attrs.field(default=0.2, validator=[ge(0), lt(1)])

    trial_max_steps: int = attrs.field(default=40, validator=ge(0))
    """Cap on optimizer steps per trial (0 = none), so a study fits a laptop; the retrained best run is not capped."""
    train_fraction: float = attrs.field(default=0.1, validator=[gt(0), le(1)])
    """Share of training posts each trial trains on (seeded, by post; 1 = all); validation and the retrained best run use all."""
    max_failed_trials: int = attrs.field(default=10, validator=ge(1))
    """A worker stops after this many failed trials of its own (a broken set-up would otherwise fail forever)."""
    keep_trial_models: bool = False
    """Keep each trial's checkpoint and training state (off: only settings, log, metrics and curves stay)."""
    retrain: bool = True
    """Retrain the best trial's parameters (full epochs, all training posts, no pruning) after the search."""
    best_output: str = "artifacts/optuna_best"
    """Run directory of the retrained best trial."""
    root: str = "artifacts/search"
    """Folder holding one sub-folder per study."""

    def __attrs_post_init__(self) -> None:
        smallest_length = min(self.max_length) if self.max_length else 0
        validate_fields(
            self,
            [
                (
                    bool(self.study.strip()) and "/" not in self.study and self.study not in (".", ".."),
                    f"study: must be a plain name, got {self.study!r}",
                ),
                (self.pruner in ("hyperband", "median", "none"), f"pruner: must be 'hyperband', 'median' or 'none', got {self.pruner!r}"),
                (
                    self.learning_rate_min <= self.learning_rate_max,
                    f"learning_rate_min: must be <= learning_rate_max ({self.learning_rate_max}), got {self.learning_rate_min}",
                ),
                (bool(self.batch_size), "batch_size: must list at least one value"),
                (all(b >= 1 for b in self.batch_size), f"batch_size: every value must be >= 1, got {list(self.batch_size)}"),
                (self.epochs_min <= self.epochs_max, f"epochs_min: must be <= epochs_max ({self.epochs_max}), got {self.epochs_min}"),
                (bool(self.max_length), "max_length: must list at least one value"),
                (
                    all(16 <= m <= 8192 for m in self.max_length),
                    f"max_length: every value must be within 16..8192, got {list(self.max_length)}",
                ),
                (bool(self.doc_stride), "doc_stride: must list at least one value"),
                (
                    all(0 <= d < smallest_length // 2 for d in self.doc_stride) or not self.max_length,
                    f"doc_stride: every value must be >= 0 and below half of the smallest max_length ({smallest_length}), got {list(self.doc_stride)}",
                ),
                (
                    self.warmup_ratio_min <= self.warmup_ratio_max,
                    f"warmup_ratio_min: must be <= warmup_ratio_max ({self.warmup_ratio_max}), got {self.warmup_ratio_min}",
                ),
                (bool(self.best_output.strip()), "best_output: must not be empty"),
                (bool(self.root.strip()), "root: must not be empty"),
            ],
        )

    @classmethod
    def load(cls, path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> SearchSettings:
        """Read the ``[search]`` table of settings.toml (the other tables are left to their packages) and apply ``--set`` overrides."""
        return load_sections(path, {"search": cls}, overrides=overrides, known_sections=ALL_SECTIONS)["search"]

    def with_changes(self, changes: dict[str, Any], source: str = "command line", *, from_text: bool = False) -> SearchSettings:
        """These settings with ``{"search.key": value}`` applied (command-line flags), checked as settings.toml is."""
        if not changes:
            return self
        schema = {"search": SearchSettings}
        return evolve_sections({"search": self}, changes, schema, known_sections=ALL_SECTIONS, source=source, from_text=from_text)["search"]

    @property
    def study_dir(self) -> Path:
        """``<root>/<study>``: trial runs, the default journal, plots and the summary."""
        return Path(self.root) / self.study

    @property
    def trials_dir(self) -> Path:
        """``<root>/<study>/trials``: one run directory per trial number."""
        return self.study_dir / "trials"
