"""Run directories: layout, the ``latest`` pointer, finding a run, and the run log."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import attrs

from evdata.atomic import atomic_write_text

RUNS_ROOT = Path("artifacts") / "runs"


class RunError(ValueError):
    """A run directory that cannot be used, with what to do about it."""


@attrs.frozen
class RunPaths:
    """Where everything of one run lives."""

    root: Path

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def settings(self) -> Path:
        return self.root / "settings.toml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def curves(self) -> Path:
        return self.root / "training_curves.png"

    @property
    def threshold_plot(self) -> Path:
        """Validation F1 against the no-answer threshold, with the tuned threshold marked (PNG)."""
        return self.root / "threshold_f1.png"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def split_metrics(self, split: str) -> Path:
        return self.root / f"metrics_{split}.json"

    def split_predictions(self, split: str) -> Path:
        return self.predictions / f"{split}.json"


def timestamp() -> str:
    """UTC timestamp used as a run directory name (sortable, unique to the second)."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def new_run(output: str | Path | None = None, root: Path = RUNS_ROOT) -> RunPaths:
    """Create a fresh run directory (``output`` or ``root/<UTC timestamp>``); refuse to reuse one with a model."""
    path = Path(output) if output else root / timestamp()
    if not output:
        n = 1
        while path.exists():
            n += 1
            path = root / f"{timestamp()}-{n}"
    if (path / "model").exists() or (path / "metrics.json").exists():
        raise RunError(f"{path} already holds a run; pass another --output or --resume {path}")
    path.mkdir(parents=True, exist_ok=True)
    return RunPaths(path)


def update_latest(run: RunPaths, root: Path = RUNS_ROOT) -> None:
    """Point ``root/latest`` at ``run`` (a relative symlink, swapped atomically; a text file where links fail)."""
    root.mkdir(parents=True, exist_ok=True)
    link = root / "latest"
    target = os.path.relpath(run.root.resolve(), root.resolve())
    tmp = root / ".latest.tmp"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(target, tmp)
        os.replace(tmp, link)
    except OSError:
        atomic_write_text(root / "LATEST", str(run.root.resolve()) + "\n")


def resolve_run(run: str | Path | None, root: Path = RUNS_ROOT) -> RunPaths:
    """A run directory from ``--run`` (None or ``latest`` = the newest run under ``root``)."""
    if run in (None, "", "latest"):
        link = root / "latest"
        # A run that failed before writing its settings is skipped: fall back to the newest usable one.
        if link.exists() and (link / "settings.toml").is_file():
            return RunPaths(link.resolve())
        if (root / "LATEST").is_file():
            return RunPaths(Path((root / "LATEST").read_text().strip()))
        candidates = sorted(p for p in root.glob("*") if p.is_dir() and (p / "settings.toml").is_file()) if root.is_dir() else []
        if not candidates:
            raise RunError(f"no run found under {root}; train one first (invoke train) or pass --run DIR")
        return RunPaths(candidates[-1])
    path = Path(run)
    if not path.is_dir():
        raise RunError(f"run directory not found: {path}")
    if not (path / "settings.toml").is_file():
        raise RunError(f"{path} is not a run directory (no settings.toml)")
    return RunPaths(path)


def attach_log(run: RunPaths) -> logging.Handler:
    """Send the ``evtrain`` logger to the run's log file (returns the handler so callers can detach it)."""
    handler = logging.FileHandler(run.log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("evtrain")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler


def detach_log(handler: logging.Handler) -> None:
    """Close and remove a handler from ``attach_log``."""
    logger = logging.getLogger("evtrain")
    logger.removeHandler(handler)
    handler.close()
