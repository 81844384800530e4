"""Entry points that tasks.py calls: train, evaluate, predict (each prints its own summary)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
from rich.console import Console
from rich.table import Table

from evdata.align import SentenceSimilarity
from evdata.atomic import atomic_write_json
from evdata.dataset import Dataset, load_dataset
from evdata.records import QAExample
from evfeatures.windows import Windows, build_windows
from evmodel.checkpoint import load_checkpoint
from evmodel.device import resolve_device
from evmodel.loading import pad_token_id
from evtrain.components import configure_threads
from evtrain.evaluation import EvalResult, evaluate_windows, prediction_records
from evtrain.loop import RunResult, train
from evtrain.precision import PrecisionPlan, resolve_precision
from evtrain.predict import predict_posts, read_input_posts
from evtrain.runs import RUNS_ROOT, RunError, RunPaths, new_run, resolve_run, update_latest
from evtrain.settings import RunSettings
from evtrain.summary import print_run_summary


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
    """Train into a new run directory (or resume one), point ``latest`` at it, print the summary."""
    console = console or Console()
    if resume:
        run = resolve_run(resume, runs_root)
        saved = RunSettings.load(run.settings)
        if saved != settings:
            console.print(f"[yellow]resuming {run.root} with its own saved settings (command-line settings ignored)[/]")
        settings = saved
    else:
        run = new_run(output, runs_root)
    update_latest(run, runs_root)
    result = train(settings, dataset, run, resume=bool(resume), show_progress=show_progress)
    print_run_summary(result.metrics, str(run.root), console)
    console.print(f"run directory: {run.root}")
    return result


def load_run_settings(run: RunPaths, data_dir: str | None = None) -> RunSettings:
    """A run's resolved settings, optionally pointed at another data folder."""
    settings = RunSettings.load(run.settings)
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

    def evaluate(self, examples: Sequence[QAExample], windows: Windows, settings: RunSettings) -> EvalResult:
        """Forward, decode and score ``windows`` with this checkpoint, as ``invoke evaluate`` does."""
        return evaluate_windows(
            self.model,
            examples,
            windows,
            settings.features,
            batch_size=settings.train.eval_batch_size,
            pad_token_id=self.pad_id,
            device=self.device,
            precision=self.precision,
        )


def load_for_inference(model_dir: str | Path, settings: RunSettings) -> InferenceSetup:
    """Threads, device, precision plan (``train.eval_cast_weights`` included) and the checkpoint in ``model_dir``."""
    configure_threads(settings.train.num_threads)
    device = resolve_device(settings.train.device)
    precision = resolve_precision(
        settings.train.precision,
        device,
        cast_eval_weights=settings.train.eval_cast_weights,
        onednn_linears=settings.train.eval_onednn_linears,
    )
    model, tokenizer, _ = load_checkpoint(model_dir, settings.model, device=str(device))
    return InferenceSetup(model, tokenizer, device, precision)


def run_evaluation(
    run: RunPaths,
    split: str,
    dataset: Dataset,
    settings: RunSettings,
    *,
    console: Console | None = None,
) -> dict[str, Any]:
    """Re-evaluate a saved run's best checkpoint on ``split``; write metrics_<split>.json and predictions."""
    console = console or Console()
    examples = dataset.split.examples.get(split)
    if examples is None:
        raise RunError(f"unknown split {split!r}: choose one of {', '.join(dataset.split.examples)}")
    if not examples:
        raise RunError(f"the {split} split has no examples")
    setup = load_for_inference(run.model, settings)
    windows = build_windows(examples, setup.tokenizer, settings.features)
    result = setup.evaluate(examples, windows, settings)
    metrics = {"split": split, **result.metrics, "seconds": result.seconds, "windows": result.windows}
    atomic_write_json(run.split_metrics(split), metrics)
    atomic_write_json(run.split_predictions(split), prediction_records(examples, result.predictions))
    table = Table(title=f"evaluate {run.root} on {split}")
    for col in ("split", "F1", "EM", "n", "recorded F1", "recorded EM", "same"):
        table.add_column(col, justify="right")
    recorded = _recorded(run, split)
    same = recorded is not None and recorded["f1"] == result.metrics["f1"] and recorded["exact_match"] == result.metrics["exact_match"]
    table.add_row(
        split,
        f"{result.metrics['f1']:.4f}",
        f"{result.metrics['exact_match']:.4f}",
        str(result.metrics["n"]),
        f"{recorded['f1']:.4f}" if recorded else "-",
        f"{recorded['exact_match']:.4f}" if recorded else "-",
        ("yes" if same else "NO") if recorded else "-",
    )
    console.print(table)
    console.print(f"wrote {run.split_metrics(split)} and {run.split_predictions(split)}")
    return metrics


def _recorded(run: RunPaths, split: str) -> dict[str, float] | None:
    if not run.metrics.is_file():
        return None
    recorded = json.loads(run.metrics.read_text(encoding="utf-8"))
    return recorded.get(split)


def run_prediction(
    run: RunPaths,
    input_path: str | Path,
    output: str | Path | None = None,
    *,
    console: Console | None = None,
    show_progress: bool = True,
) -> Path:
    """Evidence spans for the posts in ``input_path``, written as JSON (default: run/predictions/<input stem>.predict.json)."""
    console = console or Console()
    settings = RunSettings.load(run.settings)
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
        show_progress=show_progress,
    )
    out = Path(output) if output else run.predictions / f"{Path(input_path).stem}.predict.json"
    atomic_write_json(out, records)
    table = Table(title=f"predictions ({len(posts)} posts, {settings.data.question_mode} mode)")
    for col in ("post_id", "symptom", "score", "evidence"):
        table.add_column(col)
    for r in sorted(records, key=lambda r: -(r["score"] or -1e9))[:15]:
        text = r["prediction_text"].replace("\n", " ")
        table.add_row(
            r["post_id"],
            r["symptom"] or "-",
            f"{r['score']:.2f}" if r["score"] is not None else "-",
            text[:90] + ("…" if len(text) > 90 else ""),
        )
    console.print(table)
    console.print(f"wrote {len(records)} records to {out}")
    return out


def build_dataset(settings: RunSettings, similarity: SentenceSimilarity | None) -> Dataset:
    """Load, align and split the corpus named by ``settings.data``."""
    return load_dataset(settings.data, similarity)
