"""evspan tasks: parse flags, build settings, call one package entry point. No logic lives here."""

from __future__ import annotations

from invoke import task

SETTINGS = "settings.toml"
CACHE = "artifacts/cache"  # alignment results, reused while files and thresholds are unchanged
RUN_SET_HELP = "change how the saved model runs, section.key=value (repeatable; train.eval_*, precision, device, num_threads)"


def _given(**flags):
    """The flags the user passed, as ``{"section.key": value}`` (a flag left out is None)."""
    return {key: value for key, value in flags.items() if value is not None}


def _settings(overrides, **flags):
    """settings.toml + --set overrides, then the named flags (section.key -> value) evolved in."""
    from evtrain.settings import RunSettings

    return RunSettings.load(SETTINGS, list(overrides or [])).with_changes(_given(**flags), from_text=True)


def _overrides(items):
    """--set items as ``{"section.key": value text}``."""
    from evdata.config import parse_override

    return {f"{section}.{key}": value for section, key, value in map(parse_override, items or [])}


def _dataset(settings):
    """Read, align and split ``settings.data``: the alignment cached in artifacts/cache, a progress bar while it runs."""
    from evdata.dataset import load_dataset
    from evtrain.api import semantic_similarity

    return load_dataset(settings.data, semantic_similarity(settings), cache_dir=CACHE, show_progress=True)


# The project's own error types, by module: each is a one-screen message and exit code 2.
ERRORS = {
    "evdata.config": ("SettingsError", "RecordError"),
    "evdata.readers": ("DataError",),
    "evfeatures.windows": ("TokenizerError",),
    "evmodel.checkpoint": ("CheckpointError",),
    "evmodel.device": ("DeviceError",),
    "evmodel.loading": ("ModelLoadError",),
    "evtrain.errors": ("NonFiniteLossError", "TrainingInterrupted"),
    "evtrain.runs": ("RunError",),
}


def _ours(exc):
    """Whether ``exc`` is one of ERRORS; a module not imported yet cannot have raised, so nothing heavy is imported here."""
    import sys

    return any(isinstance(exc, getattr(sys.modules[m], name)) for m, names in ERRORS.items() if m in sys.modules for name in names)


def _friendly(fn):
    """Turn the project's own error types into a one-screen message and exit code 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not _ours(exc):
                raise
            from invoke.exceptions import Exit

            raise Exit(f"error: {exc}", code=2) from None

    return wrapper


@task(
    help={
        "data_dir": "folder with posts.csv/.jsonl and annotations.csv (default: the bundled synthetic demo corpus)",
        "report": "where to write the alignment report (default: artifacts/alignment_report.json)",
        "set": "override a setting, section.key=value (repeatable)",
    },
    iterable=["set"],
)
@_friendly
def data(c, data_dir=None, report="artifacts/alignment_report.json", set=None):
    """Load, align and split the corpus; print counts per alignment method and per split; write the report."""
    from evdata.dataset import print_summary
    from evdata.report import write_alignment_report

    settings = _settings(set, **{"data.data_dir": data_dir})
    dataset = _dataset(settings)
    print_summary(dataset)
    write_alignment_report(report, dataset.alignment)
    print(f"alignment report: {report} ({len(dataset.alignment.alignments)} rows)")


@task(
    help={
        "epochs": "training epochs (train.epochs)",
        "data_dir": "corpus folder (default: bundled synthetic demo corpus)",
        "model": "encoder: minilm, a local directory, or a cached hub id (model.name)",
        "output": "run directory to create (default: artifacts/runs/<UTC timestamp>)",
        "max_steps": "stop after N optimizer steps (quick runs)",
        "seed": "seed for everything (train.seed)",
        "resume": "continue a run from its newest saved state: a run directory or 'latest'",
        "set": "override a setting, section.key=value (repeatable)",
    },
    iterable=["set"],
)
@_friendly
def train(c, epochs=None, data_dir=None, model=None, output=None, max_steps=None, seed=None, resume=None, set=None):
    """Train, keep the best checkpoint by validation F1, evaluate it on test."""
    from evtrain.runs import resolve_run
    from evtrain.settings import RunSettings, resume_settings

    flags = {"train.epochs": epochs, "data.data_dir": data_dir, "model.name": model, "train.max_steps": max_steps, "train.seed": seed}
    if resume:
        changes = _overrides(set)
        settings = resume_settings(RunSettings.load(resolve_run(resume).settings), {**changes, **_given(**flags)}, from_text=True)
    else:
        settings = _settings(set, **flags)
    settings.check_for_training()
    from evtrain.api import run_training

    dataset = _dataset(settings)
    run_training(settings, dataset, output=output, resume=resume)


@task(
    help={
        "run": "run directory (default: the newest, artifacts/runs/latest)",
        "split": "train, val or test",
        "data_dir": "evaluate on another corpus folder (same split rules)",
        "set": RUN_SET_HELP,
    },
    iterable=["set"],
)
@_friendly
def evaluate(c, run=None, split="test", data_dir=None, set=None):
    """Re-run evaluation of a saved run on a split; writes metrics_<split>.json and predictions/<split>.json."""
    from evtrain.api import load_run_settings, run_evaluation
    from evtrain.runs import resolve_run

    paths = resolve_run(run)
    settings = load_run_settings(paths, data_dir, _overrides(set), from_text=True)
    dataset = _dataset(settings)
    run_evaluation(paths, split, dataset, settings)


@task(
    help={
        "run": "run directory (default: the newest)",
        "input": "posts to analyse: CSV/JSONL with post_id,text, or a plain-text file (one post)",
        "output": "JSON file to write (default: <run>/predictions/<input stem>.predict.json)",
        "set": RUN_SET_HELP,
    },
    iterable=["set"],
)
@_friendly
def predict(c, input, run=None, output=None, set=None):
    """Evidence spans for new posts (one record per post, or per post and symptom in symptom mode)."""
    from evtrain.api import run_prediction
    from evtrain.runs import resolve_run

    run_prediction(resolve_run(run), input, output, changes=_overrides(set), from_text=True)


@task(
    help={
        "run": "run directory (default: the newest); a search study folder here is reported as a study",
        "study": "search study folder (artifacts/search/<study>) to report instead of a run",
        "split": "which predictions/<split>.json to show: train, val or test",
        "output": "HTML file to write (default: <run>/report_<split>.html, or <study>/report.html)",
        "data_dir": "corpus folder the run was evaluated on, when not the one in its settings",
    }
)
@_friendly
def report(c, run=None, study=None, split="test", output=None, data_dir=None):
    """Write a self-contained HTML page: every post with gold and predicted evidence marked, scores, errors; or a study's trials."""
    from pathlib import Path

    try:
        from evsearch.report import write_report  # a run's page, or a search study's (evsearch's files)
    except ModuleNotFoundError as exc:
        if exc.name != "evsearch":
            raise
        from evtrain.report import write_report  # evsearch not installed: run pages only, --study says so

    path = write_report(run=run, study=study, split=split, output=output, data_dir=data_dir)
    print(f"report: {path}  (open file://{Path(path).resolve()})")


@task(
    help={
        "data_dir": "corpus folder (default: bundled synthetic demo corpus)",
        "model": "encoder for both sides: minilm, a local directory, or a cached hub id (model.name)",
        "steps": "optimizer steps each side trains (batch 12, same learning rate and schedule)",
        "rounds": "runs of the tuned recipe and of evspan, alternating, each in a fresh process",
        "plain_rounds": "runs of the plain recipe (0 = skip it; it is the slowest side)",
        "profile_steps": "training steps each side profiles with torch.profiler after its timed run (0 = none)",
        "eval_examples": "validation examples both sides evaluate (0 = the whole val split)",
        "eval_repeats": "evaluation passes per run; the fastest counts (all are kept in the JSON)",
        "output": "folder for the JSON report (<UTC timestamp>.json)",
        "set": "override a setting, section.key=value (repeatable); evspan's levers live in [train] and [model]",
    },
    iterable=["set"],
)
@_friendly
def bench(
    c,
    data_dir=None,
    model=None,
    steps=40,
    rounds=2,
    eval_examples=300,
    eval_repeats=2,
    plain_rounds=1,
    profile_steps=3,
    output="artifacts/bench",
    set=None,
):
    """Throughput, quality and step profile of evspan against the Hugging Face recipe, plain and tuned; prints tables, writes JSON."""
    from evtrain.bench.options import BenchOptions
    from evtrain.bench.runner import run_bench

    settings = _settings(set, **{"data.data_dir": data_dir, "model.name": model})
    options = BenchOptions(
        steps=steps,
        rounds=rounds,
        plain_rounds=plain_rounds,
        eval_examples=eval_examples,
        eval_repeats=eval_repeats,
        profile_steps=profile_steps,
    )
    dataset = _dataset(settings)
    run_bench(settings, options, dataset, output_dir=output)


@task(
    help={
        "trials": "finished trials (complete + pruned) the study should reach; rerunning continues the study (search.trials)",
        "storage": "Optuna storage URL: sqlite:///x.db, postgresql://user:pw@host/db, ... (default: a journal file in artifacts/search/<study>/)",
        "study": "study name, also its folder artifacts/search/<study>/ (search.study)",
        "workers": "worker processes on this machine, all on the same storage (search.workers)",
        "set": "override a setting, section.key=value (repeatable); the space and caps live in [search]",
    },
    iterable=["set"],
)
@_friendly
def search(c, trials=None, storage=None, study=None, workers=None, set=None):
    """Optuna search over the [search] space; the best trial is retrained into artifacts/optuna_best/."""
    from evsearch.api import run_search
    from evsearch.settings import SearchSettings

    flags = {"search.trials": trials, "search.storage": storage, "search.study": study, "search.workers": workers}
    run_search(
        SearchSettings.load(SETTINGS, list(set or [])).with_changes(_given(**flags), from_text=True), _settings(set), cache_dir=CACHE
    )
