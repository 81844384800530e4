"""The training loop: a precomputed plan of length-grouped batches, validation, early stopping, best checkpoint.

Read ``train`` top to bottom: set up the model, the data and the optimizer, build the plan
(``evtrain.plan``), then one loop over its micro-batches. Each helper below it does one thing
(``forward_backward``, ``optimizer_step``, ``validate``, ``save``) and the plan says when.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence

import attrs
import numpy as np
import torch
from tqdm.auto import tqdm

from evdata.atomic import atomic_write_text
from evdata.config import write_record
from evdata.dataset import Dataset
from evdata.records import QAExample
from evfeatures.batching import length_grouped_batches, sample_examples, subsample_negatives, windows_of_examples
from evfeatures.windows import Windows, build_windows, check_window_settings
from evmodel.checkpoint import load_checkpoint, save_checkpoint
from evmodel.device import resolve_device
from evmodel.kernels import use_cpu_attention, use_fast_dropout, use_gelu_recompute
from evmodel.loading import load_tokenizer, pad_token_id, resolve_model
from evmodel.qa import EvidenceQA
from evtrain.baselines import baseline_decisions
from evtrain.card import write_model_card
from evtrain.components import (
    build_optimizer,
    configure_determinism,
    configure_threads,
    linear_warmup_decay,
    seed_everything,
    set_attention_dropout,
    window_loader,
)
from evtrain.errors import NonFiniteLossError, TrainingInterrupted
from evtrain.evaluation import EvalResult, evaluate_windows, prediction_records
from evtrain.plan import MicroBatch, build_plan, optimizer_steps, resume_position
from evtrain.plots import plot_training_curves
from evtrain.precision import PrecisionPlan, plan_for
from evtrain.records import Best, EvaluationReport, HistoryRow, Progress, RunMetrics, Scores, SplitEvaluation
from evtrain.runs import RunPaths, attach_log, detach_log
from evtrain.settings import RunSettings
from evtrain.state import latest_state, load_state, save_state

__all__ = ["EvaluationHook", "NonFiniteLossError", "RunResult", "TrainingInterrupted", "train"]

log = logging.getLogger("evtrain")

EvaluationHook = Callable[[EvaluationReport], None]
_DTYPE_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
"""Called after each validation; may raise to stop the run (evsearch prunes trials this way)."""


@attrs.frozen
class RunResult:
    """What a finished run produced."""

    run: RunPaths
    metrics: RunMetrics

    @property
    def best_value(self) -> float:
        return self.metrics.best_value


@attrs.frozen
class ModelSetup:
    """The model being trained and how it runs."""

    model: EvidenceQA
    forward: Callable[..., object]
    """``model`` or its ``torch.compile`` wrapper."""
    tokenizer: object
    device: torch.device
    precision: PrecisionPlan
    threads: int
    pad_id: int


@attrs.frozen
class DataSetup:
    """Examples and their windows per split."""

    examples: dict[str, tuple[QAExample, ...]]
    windows: dict[str, Windows]


@attrs.frozen
class OptimizerSetup:
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler


def train(
    settings: RunSettings,
    dataset: Dataset,
    run: RunPaths,
    *,
    resume: bool = False,
    on_evaluation: EvaluationHook | None = None,
    evaluate_test: bool = True,
    show_progress: bool = True,
) -> RunResult:
    """Train, keep the best checkpoint by the validation metric, then evaluate it on test.

    With ``resume`` the newest complete state under ``run/state`` is restored and training continues
    at the next micro-batch of the same plan (same batches, same RNG streams).
    """
    handler = attach_log(run)
    try:
        started = time.perf_counter()
        t = settings.train
        m = setup_model(settings)
        data = setup_data(settings, dataset, m.tokenizer)
        plan = build_plan(
            lambda epoch: epoch_batches(data.windows["train"], data.examples["train"], settings, epoch),
            epochs=t.epochs,
            grad_accum_steps=t.grad_accum_steps,
            max_steps=t.max_steps,
            eval_every_steps=t.eval_every_steps,
            save_state_every_steps=t.save_state_every_steps,
        )
        opt = setup_optimizer(m, settings, optimizer_steps(plan))
        atomic_write_text(run.settings, settings.to_toml())
        progress = restore(run, m, opt) if resume else Progress()
        position = resume_position(plan, progress.epoch, progress.batch_in_epoch)
        last_validation = max((i for i, mb in enumerate(plan) if mb.validate), default=-1)
        announce(settings, m, data, optimizer_steps(plan), log_settings=True)

        remaining = plan[position:]
        loader = window_loader(data.windows["train"], [mb.windows for mb in remaining], m.pad_id, t, m.device)
        m.model.train()
        with _stop_requests() as stop, _bar(plan, position, show_progress) as bar:
            tick = time.perf_counter()
            for mb, batch in zip(remaining, loader):
                forward_backward(m, opt, batch, t.grad_accum_steps, progress, lambda loss, mb=mb: _non_finite(data, mb, loss, run))
                progress.epoch, progress.batch_in_epoch = mb.epoch, mb.index + 1
                bar.update(1)
                if not mb.steps:
                    continue
                optimizer_step(m, opt, t.max_grad_norm)
                progress.global_step = mb.step
                progress.train_seconds += time.perf_counter() - tick
                if mb.step % t.log_every_steps == 0 or mb.epoch_end:
                    _show(bar, progress, opt, mb, t.epochs)
                if mb.validate:
                    validate(settings, m, data, progress, run, mb, last=mb is plan[last_validation], hook=on_evaluation)
                if mb.epoch_end:
                    progress.epoch, progress.batch_in_epoch = mb.epoch + 1, 0
                if mb.save_state or stop.signal or progress.stopped_early:
                    save(run, m, opt, progress)
                if stop.signal:
                    raise TrainingInterrupted(stop.signal, mb.epoch + 1, mb.step, run.root)
                if progress.stopped_early:
                    break
                tick = time.perf_counter()

        # The optimizer's state (twice the model's size for AdamW) is not needed to evaluate the best checkpoint.
        del opt, loader
        metrics = finish(settings, dataset, m, data, progress, run, evaluate_test=evaluate_test, started=started)
        return RunResult(run, metrics)
    finally:
        detach_log(handler)


# -- setup -------------------------------------------------------------------------------------------------


def setup_model(settings: RunSettings) -> ModelSetup:
    """Threads, device, precision plan, seeded encoder + span head, CPU fast paths."""
    t = settings.train
    threads = configure_threads(t.num_threads)
    device = resolve_device(t.device)
    precision = plan_for(t, device)
    if configure_determinism(device, t.deterministic):
        log.info("train.deterministic: deterministic CUDA kernels on")
    seed_everything(t.seed)
    model_path = resolve_model(settings.model.name, settings.model)
    tokenizer = load_tokenizer(model_path)
    model = EvidenceQA.from_encoder(model_path, settings.model, seed=t.seed).to(device)
    set_attention_dropout(model, t.attention_dropout)
    if device.type == "cpu" and t.cpu_attention != "sdpa" and precision.autocast_dtype == torch.bfloat16:
        # Checks itself on a probe batch; on a mismatch it falls back to sdpa with one warning naming the setting.
        attention = use_cpu_attention(model, t.cpu_attention)
        log.info("train.cpu_attention = %r: %s", t.cpu_attention, "active" if attention.active else f"off ({attention.reason})")
    if device.type == "cpu" and t.fast_dropout:
        log.info("train.fast_dropout: %d dropout layer(s) swapped for FastDropout", use_fast_dropout(model))
    if t.freeze_word_embeddings:
        embeddings = model.encoder.get_input_embeddings().weight.requires_grad_(False)
        log.info("train.freeze_word_embeddings: %d parameters frozen", embeddings.numel())
    if t.gelu_recompute:
        log.info("train.gelu_recompute: %d feed-forward GELU(s) moved into GeluInputLinear", use_gelu_recompute(model))
    if settings.model.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    forward = torch.compile(model, dynamic=True) if t.compile else model
    return ModelSetup(model, forward, tokenizer, device, precision, threads, pad_token_id(tokenizer))


def setup_data(settings: RunSettings, dataset: Dataset, tokenizer: object) -> DataSetup:
    """The split's examples and their windows; training needs a training and a validation split.

    Examples whose evidence could not be located (``answer_unknown``) are neither positives nor
    negatives: they are left out of training and scoring.
    """
    split = dataset.split.examples
    examples = {name: tuple(ex for ex in split.get(name, ()) if not ex.answer_unknown) for name in ("train", "val", "test")}
    unknown = sum(1 for exs in split.values() for ex in exs if ex.answer_unknown)
    if unknown:
        log.info("left out %d example(s) whose evidence could not be located", unknown)
    if not examples["train"]:
        raise ValueError("the training split is empty: check data.train_ratio and the corpus (invoke data)")
    if not examples["val"]:
        raise ValueError(
            "the validation split is empty: the best checkpoint is chosen on validation, so data.val_ratio must leave "
            "at least one post with evidence there (invoke data shows the split)"
        )
    questions = sorted({ex.question for exs in examples.values() for ex in exs})
    check_window_settings(settings.features, tokenizer, questions)
    windows = {name: build_windows(exs, tokenizer, settings.features) for name, exs in examples.items() if exs}
    examples[VAL_SAMPLE], windows[VAL_SAMPLE] = validation_sample(examples["val"], windows["val"], settings.train)
    log.info("windows: %s", {k: len(v) for k, v in windows.items()})
    log.info("train windows with an answer: %d of %d", int(windows["train"].has_answer.sum()), len(windows["train"]))
    log.info("train examples without an answer: %d of %d", sum(not ex.has_answer for ex in examples["train"]), len(examples["train"]))
    return DataSetup(examples, windows)


VAL_SAMPLE = "val_sample"
"""The examples validation scores after each epoch (``validation_sample``); never a split of its own in metrics.json."""


def validation_sample(examples: tuple[QAExample, ...], windows: Windows, t) -> tuple[tuple[QAExample, ...], Windows]:
    """The fixed, seeded sample of validation examples scored after each epoch (``train.val_no_answer_ratio``), and their windows."""
    if math.isinf(t.val_no_answer_ratio):
        return examples, windows
    chosen = sample_examples([ex.has_answer for ex in examples], [ex.hard_negative for ex in examples], t.val_no_answer_ratio, t.seed, 0)
    kept = windows_of_examples(windows.example_index, chosen)
    sample = windows.subset(kept)
    # Windows refer to examples by position: renumber them into the sample.
    sample = attrs.evolve(sample, example_index=np.searchsorted(chosen, sample.example_index).astype(np.int64))
    return tuple(examples[int(i)] for i in chosen), sample


def epoch_examples(examples: Sequence[QAExample], settings: RunSettings, epoch: int) -> np.ndarray:
    """Indices (sorted) of the examples trained on in epoch ``epoch``: every answerable one and hard negative,
    ``train.no_answer_ratio`` other no-answer examples per answerable one (a fresh seeded draw each epoch),
    never one whose evidence could not be located."""
    t = settings.train
    return sample_examples(
        [ex.has_answer for ex in examples],
        [ex.hard_negative for ex in examples],
        t.no_answer_ratio,
        t.seed,
        epoch,
        exclude=[ex.answer_unknown for ex in examples],
    )


def epoch_windows(windows: Windows, examples: Sequence[QAExample], settings: RunSettings, epoch: int) -> np.ndarray:
    """Epoch ``epoch``'s training windows (sorted): those of the sampled examples, then a seeded share of answer-less windows.

    Every answerable example and every hard negative is kept; ``train.no_answer_ratio`` no-answer
    examples per answerable one are drawn afresh each epoch (``sample_examples``). All windows of a
    no-answer example are labelled CLS; ``train.negative_window_ratio`` then keeps a share of the
    answer-less windows.
    """
    t = settings.train
    candidates = windows_of_examples(windows.example_index, epoch_examples(examples, settings, epoch))
    return candidates[subsample_negatives(windows.has_answer[candidates], t.negative_window_ratio, t.seed, epoch)]


def epoch_batches(windows: Windows, examples: Sequence[QAExample], settings: RunSettings, epoch: int) -> list[list[int]]:
    """Epoch ``epoch``'s training batches: the sampled examples' windows (``epoch_windows``), length-grouped, shuffled."""
    t = settings.train
    kept = epoch_windows(windows, examples, settings, epoch)
    batches = length_grouped_batches(
        windows.lengths[kept], t.batch_size, group_size=settings.features.length_group_size, seed=t.seed, epoch=epoch
    )
    return [[int(kept[i]) for i in b] for b in batches]


def setup_optimizer(m: ModelSetup, settings: RunSettings, total_steps: int) -> OptimizerSetup:
    """AdamW, linear warm-up and decay over the plan's optimizer steps, a gradient scaler for fp16."""
    optimizer = build_optimizer(m.model, settings.train, m.device)
    scheduler = linear_warmup_decay(optimizer, int(settings.train.warmup_ratio * total_steps), total_steps)
    scaler = torch.amp.GradScaler(m.device.type, enabled=m.precision.use_grad_scaler)
    return OptimizerSetup(optimizer, scheduler, scaler)


def restore(run: RunPaths, m: ModelSetup, opt: OptimizerSetup) -> Progress:
    """Load the newest complete state of ``run`` into model and optimizer; return its progress."""
    state = latest_state(run.state)
    if state is None:
        raise ValueError(f"nothing to resume in {run.root}: no complete training state under {run.state}")
    progress = load_state(state, model=m.model, optimizer=opt.optimizer, scheduler=opt.scheduler, scaler=opt.scaler)
    log.info("resumed from %s (epoch %d, batch %d, step %d)", state, progress.epoch, progress.batch_in_epoch, progress.global_step)
    print(f"Resumed from {state.name}: epoch {progress.epoch + 1}, step {progress.global_step}")
    return progress


def announce(settings: RunSettings, m: ModelSetup, data: DataSetup, steps: int, *, log_settings: bool) -> None:
    if log_settings:
        log.info("settings:\n%s", settings.to_toml())
    print(
        f"Training {settings.model.name} on {len(data.examples['train'])} examples ({len(data.windows['train'])} windows), "
        f"{steps} optimizer steps, {m.precision.label} on {m.device} ({m.threads} threads)"
    )


# -- one micro-batch, one step ---------------------------------------------------------------------------


def forward_backward(
    m: ModelSetup,
    opt: OptimizerSetup,
    batch: dict[str, torch.Tensor],
    accum: int,
    progress: Progress,
    non_finite: Callable[[torch.Tensor], Exception],
) -> None:
    """Forward and backward one micro-batch, its loss scaled for gradient accumulation; add it to ``progress``."""
    batch = {k: v.to(m.device, non_blocking=True) for k, v in batch.items()}
    with m.precision.autocast(m.device):
        loss = m.forward(**batch).loss
    if not torch.isfinite(loss):
        raise non_finite(loss)
    opt.scaler.scale(loss / accum).backward()
    progress.loss_sum += float(loss.detach())
    progress.loss_count += 1
    progress.tokens += int(batch["attention_mask"].sum())


def optimizer_step(m: ModelSetup, opt: OptimizerSetup, max_grad_norm: float) -> None:
    """Clip, step, advance the schedule, clear the gradients."""
    if max_grad_norm > 0:
        opt.scaler.unscale_(opt.optimizer)
        torch.nn.utils.clip_grad_norm_(m.model.parameters(), max_grad_norm)
    opt.scaler.step(opt.optimizer)
    opt.scaler.update()
    opt.scheduler.step()
    opt.optimizer.zero_grad(set_to_none=True)


def _non_finite(data: DataSetup, mb: MicroBatch, loss: torch.Tensor, run: RunPaths) -> NonFiniteLossError:
    windows = data.windows["train"]
    ids = sorted({data.examples["train"][int(windows.example_index[w])].id for w in mb.windows})
    return NonFiniteLossError(
        f"non-finite loss ({float(loss.detach())}) at epoch {mb.epoch + 1}, step {mb.step}, batch {mb.index + 1}; "
        f"examples in the batch: {', '.join(ids[:20])}{' ...' if len(ids) > 20 else ''}. "
        f"The last good state is in {run.state}; try a lower train.learning_rate or train.precision=off."
    )


# -- validation, checkpoints, states ---------------------------------------------------------------------------


def evaluate(
    m: ModelSetup, model: torch.nn.Module, data: DataSetup, split: str, settings: RunSettings, threshold: float | None = None
) -> EvalResult:
    """Forward, decode and score one split with ``model`` at ``threshold`` (else the setting's; else tuned on the split)."""
    return evaluate_windows(
        model,
        data.examples[split],
        data.windows[split],
        settings.features,
        batch_size=settings.train.eval_batch_size,
        pad_token_id=m.pad_id,
        device=m.device,
        precision=m.precision,
        threshold=threshold if threshold is not None else settings.features.fixed_null_threshold,
    )


def validate(
    settings: RunSettings,
    m: ModelSetup,
    data: DataSetup,
    progress: Progress,
    run: RunPaths,
    mb: MicroBatch,
    *,
    last: bool,
    hook: EvaluationHook | None,
) -> None:
    """Score validation, record a history row, keep the checkpoint if it is the best, decide early stopping."""
    t = settings.train
    result = evaluate(m, m.model, data, VAL_SAMPLE, settings)
    loss, rate, seconds = progress.take_window()
    row = HistoryRow(
        epoch=mb.epoch + 1,
        step=mb.step,
        train_loss=loss,
        val_f1=result.scores.f1,
        val_exact_match=result.scores.exact_match,
        train_seconds=seconds,
        eval_seconds=result.seconds,
        train_tokens_per_second=rate,
        val_threshold=result.threshold,
        val_symptom_macro_f1=result.scores.symptom_macro_f1,
    )
    progress.history.append(row)
    value = result.scores.value(t.metric)
    improved = progress.best is None or value > progress.best.value
    if improved:
        progress.best, progress.bad_evals = Best(t.metric, value, mb.epoch + 1, mb.step), 0
        save_checkpoint(m.model, m.tokenizer, run.model, _checkpoint_metadata(settings, progress.best))
    else:
        progress.bad_evals += 1
        progress.stopped_early = bool(t.patience) and progress.bad_evals >= t.patience
    log.info("validation %s", row)
    tqdm.write(
        f"  epoch {row.epoch} step {row.step}: loss {row.train_loss:.4f}  val F1 {row.val_f1:.2f}  "
        f"EM {row.val_exact_match:.2f}  HasAns F1 {result.scores.has_ans_f1:.2f}  NoAns {result.scores.no_ans_exact:.2f}  "
        f"symptom macro F1 {result.scores.symptom_macro_f1:.2f}  (threshold {result.threshold:.2f}; "
        f"{row.train_tokens_per_second:.0f} tok/s){'  * best' if improved else ''}"
    )
    if progress.stopped_early:
        tqdm.write(f"  early stopping: no {t.metric} improvement in {progress.bad_evals} evaluations")
    plot_training_curves(progress.history, run.curves, title=run.root.name)
    if hook is not None:
        hook(EvaluationReport(len(progress.history), row.epoch, row.step, result.scores, value, improved, last or progress.stopped_early))


def _checkpoint_metadata(settings: RunSettings, best: Best) -> dict[str, object]:
    return {
        "base_model": settings.model.name,
        "question_mode": settings.data.question_mode,
        "epoch": best.epoch,
        "step": best.step,
        "metric": best.metric,
        "value": best.value,
        "max_length": settings.features.max_length,
        "doc_stride": settings.features.doc_stride,
    }


def save(run: RunPaths, m: ModelSetup, opt: OptimizerSetup, progress: Progress) -> None:
    """A resumable state: model, optimizer, schedule, scaler, RNG streams and ``progress``."""
    save_state(run.state, model=m.model, optimizer=opt.optimizer, scheduler=opt.scheduler, scaler=opt.scaler, progress=progress)


# -- the end -------------------------------------------------------------------------------------------------


def finish(
    settings: RunSettings,
    dataset: Dataset,
    m: ModelSetup,
    data: DataSetup,
    progress: Progress,
    run: RunPaths,
    *,
    evaluate_test: bool,
    started: float,
) -> RunMetrics:
    """Evaluate the best checkpoint on val (and test), write predictions, metrics and the model card."""
    if progress.best is None:
        raise ValueError(f"{run.root}: the run ended before its first validation, so it has no best checkpoint")
    best_model, _, _ = load_checkpoint(run.model, settings.model, device=str(m.device))
    results: dict[str, EvalResult] = {}
    # The threshold is tuned on validation (unless the settings fix one) and then applied, unchanged, to test.
    threshold = settings.features.fixed_null_threshold
    for split in ("val", "test") if evaluate_test else ("val",):
        if split in data.windows:
            results[split] = evaluate(m, best_model, data, split, settings, threshold)
            threshold = results[split].threshold
            records = prediction_records(data.examples[split], results[split].predictions, results[split].decisions)
            write_record(run.split_predictions(split), records)
    if "val" in results:
        from evtrain.evaluation import threshold_curve
        from evtrain.plots import plot_threshold_curve

        curve = threshold_curve(data.examples["val"], results["val"].predictions)
        plot_threshold_curve(curve, results["val"].threshold, run.threshold_plot, title=f"{run.root.name}: validation F1 vs threshold")
    history = progress.history
    metrics = RunMetrics(
        run=run.root.name,
        model=settings.model.name,
        question_mode=settings.data.question_mode,
        synthetic_data=bool(dataset.corpus.synthetic),
        device=str(m.device),
        precision=m.precision.label,
        precision_dtype=_DTYPE_NAMES[m.precision.autocast_dtype],
        threads=m.threads,
        examples={k: len(v) for k, v in data.examples.items() if k != VAL_SAMPLE},
        windows={k: len(v) for k, v in data.windows.items() if k != VAL_SAMPLE},
        history=list(history),
        best=progress.best,
        stopped_early=progress.stopped_early,
        optimizer_steps=progress.global_step,
        train_tokens_per_second=float(np.mean([h.train_tokens_per_second for h in history])) if history else 0.0,
        val=results["val"].scores if "val" in results else None,
        test=results["test"].scores if "test" in results else None,
        baselines={split: _baselines(data.examples[split], settings) for split in ("val", "test") if data.examples[split]},
        wall_seconds=time.perf_counter() - started,
        null_threshold=threshold,
        threshold_source="features.null_threshold" if settings.features.fixed_null_threshold is not None else "tuned on val",
    )
    write_record(run.metrics, metrics)
    if "test" in results:
        write_record(
            run.split_metrics("test"), SplitEvaluation("test", results["test"].scores, results["test"].seconds, len(data.windows["test"]))
        )
    write_model_card(run.model, settings, metrics)
    log.info("finished: best %s, val %s, test %s", metrics.best, metrics.val, metrics.test)
    return metrics


def _baselines(examples: Sequence[QAExample], settings: RunSettings) -> dict[str, Scores]:
    """The baselines' presence decisions scored like the model's, on the same rows (their own decisions, no threshold)."""
    from evtrain.evaluation import scores_from_decisions
    from evtrain.metrics import decision_scores

    return {
        name: scores_from_decisions(decision_scores(examples, decisions), None) for name, decisions in baseline_decisions(examples).items()
    }


# -- signals and the progress bar -------------------------------------------------------------------------------


@attrs.define
class _StopRequest:
    signal: str = ""


@contextlib.contextmanager
def _stop_requests() -> Iterator[_StopRequest]:
    """Turn SIGINT/SIGTERM into a request the loop honours after the next optimizer step (handlers restored afterwards).

    Only at an optimizer step: between micro-batches of one accumulated step the gradients live only
    in memory, and a state saved there would resume without them.
    """
    import signal

    request = _StopRequest()

    def handler(signum, _frame):
        if request.signal:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        request.signal = signal.Signals(signum).name

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _show(bar: tqdm, progress: Progress, opt: OptimizerSetup, mb: MicroBatch, epochs: int) -> None:
    bar.set_description(f"epoch {mb.epoch + 1}/{epochs}")
    bar.set_postfix(
        loss=f"{progress.loss_sum / max(1, progress.loss_count):.3f}",
        lr=f"{opt.scheduler.get_last_lr()[0]:.2e}",
        tok_s=f"{progress.tokens / max(1e-9, progress.train_seconds):.0f}",
    )


@contextlib.contextmanager
def _bar(plan: Sequence[MicroBatch], position: int, show: bool) -> Iterator[tqdm]:
    bar = tqdm(total=len(plan), initial=position, desc="train", unit="batch", disable=not show, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()
