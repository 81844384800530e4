"""Entry points that tasks.py calls: train, evaluate, predict (each prints its own summary)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from rich.console import Console
from rich.table import Table

from evdata.align import SentenceSimilarity
from evdata.config import RecordError, write_record
from evdata.dataset import Dataset, load_dataset
from evdata.records import QAExample
from evfeatures.windows import Windows, build_windows
from evmodel.checkpoint import load_checkpoint
from evmodel.device import resolve_device
from evmodel.loading import pad_token_id
from evtrain.components import configure_threads
from evtrain.evaluation import EvalResult, evaluate_windows, prediction_records
from evtrain.loop import RunResult, train
from evtrain.precision import PrecisionPlan, plan_for
from evtrain.predict import predict_posts, prediction_table, read_input_posts, write_prediction_csv
from evtrain.records import SplitEvaluation, read_metrics
from evtrain.runs import RUNS_ROOT, RunError, RunPaths, new_run, resolve_run, update_latest
from evtrain.settings import RunSettings, inference_settings
from evtrain.summary import print_run_summary


def semantic_similarity(settings: RunSettings) -> SentenceSimilarity | None:
    """The semantic alignment step's scorer (evmodel's sentence encoder), or None when ``data.use_semantic`` is off.

    It runs on the run's device (``train.device``), so on a machine with a GPU ``auto`` aligns there too, in
    fp32 (on a CPU with native bf16 it runs under bf16 autocast; the alignment cache keeps the two apart).
    """
    if not settings.data.use_semantic:
        return None
    from evmodel.similarity import EncoderSimilarity

    return EncoderSimilarity(settings.model.similarity_model, settings.model, device=settings.train.device)


def run_training(
    settings: RunSettings,
    dataset: Dataset,
    *,
    output: str | Path | None = None,
    resume: str | Path | None = None,
    runs_root: Path = RUNS_ROOT,
    console: Console | None = None,
    show_progress: bool = True,
) -> RunResult:
    """Train into a new run directory (or resume ``resume`` with ``settings``, see ``resume_settings``); print the summary."""
    console = console or Console()
    settings.check_for_training()
    if resume and output:
        raise RunError("--output names a new run and --resume continues an existing one in place: pass one of them")
    run = resolve_run(resume, runs_root) if resume else new_run(output, runs_root)
    update_latest(run, runs_root)
    result = train(settings, dataset, run, resume=bool(resume), show_progress=show_progress)
    print_run_summary(result.metrics, str(run.root), console)
    console.print(f"run directory: {run.root}")
    return result


def load_run_settings(
    run: RunPaths, data_dir: str | None = None, changes: Mapping[str, Any] | None = None, *, from_text: bool = False
) -> RunSettings:
    """A run's resolved settings, optionally pointed at another data folder, with ``changes`` to how it runs.

    ``changes`` (``{"section.key": value}``, ``--set``) may only name ``evtrain.settings.INFERENCE_SETTINGS``;
    anything else is a ``SettingsError`` (see ``inference_settings``).
    """
    settings = inference_settings(RunSettings.load(run.settings), changes or {}, from_text=from_text)
    if data_dir:
        settings = attrs.evolve(settings, data=attrs.evolve(settings.data, data_dir=str(data_dir), posts_file="", annotations_file=""))
    return settings


@attrs.frozen
class InferenceSetup:
    """A saved checkpoint loaded for evaluation or prediction, on the device and precision its settings name."""

    model: Any
    tokenizer: Any
    device: Any
    precision: PrecisionPlan

    @property
    def pad_id(self) -> int:
        return pad_token_id(self.tokenizer)

    def evaluate(
        self, examples: Sequence[QAExample], windows: Windows, settings: RunSettings, threshold: float | None = None
    ) -> EvalResult:
        """Forward, decode and score ``windows`` with this checkpoint at ``threshold`` (None: tuned on them), as ``invoke evaluate`` does."""
        return evaluate_windows(
            self.model,
            examples,
            windows,
            settings.features,
            batch_size=settings.train.eval_batch_size,
            pad_token_id=self.pad_id,
            device=self.device,
            precision=self.precision,
            threshold=threshold,
        )


def run_threshold(run: RunPaths, settings: RunSettings) -> float:
    """The no-answer threshold to apply with a saved run: ``features.null_threshold`` when set, else the one in metrics.json.

    Never re-tuned here: a run's threshold is chosen on validation when it trains, and test figures use it.
    """
    fixed = settings.features.fixed_null_threshold
    if fixed is not None:
        return fixed
    stored = read_metrics(run.metrics).null_threshold if run.metrics.is_file() else None
    if stored is None:
        raise RunError(
            f"{run.root}: no no-answer threshold stored in {run.metrics.name} (a run trained before no-answer decoding, or unfinished); "
            "set one with --set features.null_threshold=VALUE"
        )
    return float(stored)


def load_for_inference(model_dir: str | Path, settings: RunSettings) -> InferenceSetup:
    """Threads, device, precision plan (``train.eval_cast_weights`` included) and the checkpoint in ``model_dir``."""
    configure_threads(settings.train.num_threads)
    device = resolve_device(settings.train.device)
    precision = plan_for(settings.train, device)
    model, tokenizer, _ = load_checkpoint(model_dir, settings.model, device=str(device))
    return InferenceSetup(model, tokenizer, device, precision)


def run_evaluation(
    run: RunPaths,
    split: str,
    dataset: Dataset,
    settings: RunSettings,
    *,
    console: Console | None = None,
) -> SplitEvaluation:
    """Re-evaluate a saved run's best checkpoint on ``split``; write metrics_<split>.json and predictions."""
    console = console or Console()
    examples = dataset.split.examples.get(split)
    if examples is None:
        raise RunError(f"unknown split {split!r}: choose one of {', '.join(dataset.split.examples)}")
    if not examples:
        raise RunError(f"the {split} split has no examples")
    examples = tuple(ex for ex in examples if not ex.answer_unknown)
    threshold = run_threshold(run, settings)
    setup = load_for_inference(run.model, settings)
    windows = build_windows(examples, setup.tokenizer, settings.features)
    result = setup.evaluate(examples, windows, settings, threshold)
    evaluation = SplitEvaluation(split, result.scores, result.seconds, result.windows)
    write_record(run.split_metrics(split), evaluation)
    write_record(run.split_predictions(split), prediction_records(examples, result.predictions, result.decisions))
    table = Table(title=f"evaluate {run.root} on {split} (no-answer threshold {threshold:.3f})")
    for col in ("figure (%)", "now", "recorded by the run", "same"):
        table.add_column(col, justify="left" if col == "figure (%)" else "right")
    recorded = _recorded(run, split)
    scores = result.scores
    figures = (
        ("F1", "f1", ".4f"),
        ("EM", "exact_match", ".4f"),
        ("HasAns F1", "has_ans_f1", ".2f"),
        ("NoAns accuracy", "no_ans_exact", ".2f"),
        ("symptom macro F1", "symptom_macro_f1", ".2f"),
        ("evidence F1", "evidence_f1", ".2f"),
        ("n (examples)", "n", "d"),
    )
    for label, field, fmt in figures:
        now = getattr(scores, field)
        then = getattr(recorded, field) if recorded is not None else None
        same = "-" if then is None else "yes" if now == then else "NO"
        table.add_row(label, format(now, fmt), "-" if then is None else format(then, fmt), same)
    console.print(table)
    console.print(f"wrote {run.split_metrics(split)} and {run.split_predictions(split)}")
    return evaluation


def _recorded(run: RunPaths, split: str):
    """The scores the run recorded for ``split`` when it trained (None when it has none, or its metrics.json is unreadable)."""
    if not run.metrics.is_file():
        return None
    try:
        return read_metrics(run.metrics).split(split)
    except RecordError as exc:
        Console(stderr=True).print(f"[yellow]{exc}[/]")
        return None


def run_prediction(
    run: RunPaths,
    input_path: str | Path,
    output: str | Path | None = None,
    *,
    console: Console | None = None,
    show_progress: bool = True,
    changes: Mapping[str, Any] | None = None,
    from_text: bool = False,
) -> Path:
    """Evidence spans for the posts in ``input_path``, written as JSON (default: run/predictions/<input stem>.predict.json).

    ``changes``: ``--set`` overrides of how the model runs (``evtrain.settings.INFERENCE_SETTINGS`` only).
    """
    console = console or Console()
    settings = load_run_settings(run, changes=changes, from_text=from_text)
    threshold = run_threshold(run, settings)
    setup = load_for_inference(run.model, settings)
    posts = read_input_posts(input_path)
    records = predict_posts(
        setup.model,
        setup.tokenizer,
        posts,
        question_mode=settings.data.question_mode,
        features=settings.features,
        batch_size=settings.train.eval_batch_size,
        device=setup.device,
        precision=setup.precision,
        threshold=threshold,
        show_progress=show_progress,
    )
    out = Path(output) if output else run.predictions / f"{Path(input_path).stem}.predict.json"
    if out.suffix.lower() == ".csv":
        write_prediction_csv(out, records)
    else:
        write_record(out, records)
    console.print(prediction_table(records, len(posts), settings.data.question_mode, threshold))
    n_posts = len({r.post_id for r in records})
    with_evidence = len({r.post_id for r in records if r.present})
    console.print(f"{with_evidence} of {n_posts} posts hold evidence at threshold {threshold:.3f}; wrote {len(records)} records to {out}")
    return out


def build_dataset(settings: RunSettings, similarity: SentenceSimilarity | None) -> Dataset:
    """Load, align and split the corpus named by ``settings.data``."""
    return load_dataset(settings.data, similarity)
