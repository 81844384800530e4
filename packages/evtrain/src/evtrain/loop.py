"""The training loop: epochs of length-grouped batches, validation, early stopping, best checkpoint."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from tqdm.auto import tqdm

from evdata.atomic import atomic_write_json, atomic_write_text
from evdata.dataset import Dataset
from evfeatures.batching import length_grouped_batches, subsample_negatives
from evfeatures.windows import build_windows, check_window_settings
from evmodel.checkpoint import load_checkpoint, save_checkpoint
from evmodel.device import resolve_device
from evmodel.kernels import use_fp32_attention
from evmodel.loading import load_tokenizer, pad_token_id, resolve_model
from evmodel.qa import EvidenceQA
from evtrain.baselines import baseline_scores
from evtrain.components import (
    build_optimizer,
    configure_threads,
    linear_warmup_decay,
    seed_everything,
    set_attention_dropout,
    total_optimizer_steps,
    window_loader,
)
from evtrain.evaluation import EvalResult, evaluate_windows, prediction_records
from evtrain.plots import plot_training_curves
from evtrain.precision import resolve_precision
from evtrain.runs import RunPaths, attach_log, detach_log
from evtrain.settings import RunSettings
from evtrain.state import latest_state, load_state, save_state

log = logging.getLogger("evtrain")

# Called after each validation with (progress, metrics); may raise to stop the run (evsearch prunes this way).
EvaluationHook = Callable[[dict[str, Any], dict[str, float]], None]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the batch's examples."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM arrived; a resumable state was saved (the message says how to resume)."""


@attrs.frozen
class RunResult:
    """What a finished run produced."""

    run: RunPaths
    metrics: dict[str, Any]

    @property
    def best_value(self) -> float:
        return float(self.metrics["best"]["value"])


@contextlib.contextmanager
def _stop_requests() -> Iterator[dict[str, Any]]:
    """Turn SIGINT/SIGTERM into a flag the loop checks between batches (restored afterwards)."""
    flag: dict[str, Any] = {"signal": None}

    def handler(signum, _frame):
        if flag["signal"] is not None:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        flag["signal"] = signal.Signals(signum).name

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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

    With ``resume`` the newest complete state under ``run/state`` is restored and training
    continues where it stopped (same batches, same RNG streams).
    """
    handler = attach_log(run)
    try:
        return _Trainer(settings, dataset, run, on_evaluation, show_progress).fit(resume=resume, evaluate_test=evaluate_test)
    finally:
        detach_log(handler)


class _Trainer:
    def __init__(self, settings: RunSettings, dataset: Dataset, run: RunPaths, hook: EvaluationHook | None, show_progress: bool) -> None:
        self.s = settings
        self.dataset = dataset
        self.run = run
        self.hook = hook
        self.show_progress = show_progress
        self.t = settings.train

    # -- setup ---------------------------------------------------------------------------
    def _setup_model(self) -> None:
        self.threads = configure_threads(self.t.num_threads)
        self.device = resolve_device(self.t.device)
        self.precision = resolve_precision(
            self.t.precision, self.device, cast_eval_weights=self.t.eval_cast_weights, onednn_linears=self.t.eval_onednn_linears
        )
        seed_everything(self.t.seed)
        self.model_path = resolve_model(self.s.model.name, self.s.model)
        self.tokenizer = load_tokenizer(self.model_path)
        self.model = EvidenceQA.from_encoder(self.model_path, self.s.model, seed=self.t.seed).to(self.device)
        set_attention_dropout(self.model, self.t.attention_dropout)
        if self.device.type == "cpu" and self.t.cpu_attention_fp32 and self.precision.autocast_dtype is not None:
            use_fp32_attention(self.model)
        if self.s.model.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.forward = torch.compile(self.model, dynamic=True) if self.t.compile else self.model
        self.pad_id = pad_token_id(self.tokenizer)

    def _setup_data(self) -> None:
        split = self.dataset.split.examples
        self.examples = {name: tuple(split.get(name, ())) for name in ("train", "val", "test")}
        if not self.examples["train"]:
            raise ValueError("the training split is empty: check data.train_ratio and the corpus (invoke data)")
        questions = sorted({ex.question for exs in self.examples.values() for ex in exs})
        check_window_settings(self.s.features, self.tokenizer, questions)
        self.windows = {name: build_windows(exs, self.tokenizer, self.s.features) for name, exs in self.examples.items() if exs}
        tw = self.windows["train"]
        self.batches_per_epoch = self._epoch_batches(0).__len__()
        log.info("windows: %s", {k: len(v) for k, v in self.windows.items()})
        log.info("train windows with an answer: %d of %d", int(tw.has_answer.sum()), len(tw))

    def _setup_optimizer(self) -> None:
        self.total_steps = total_optimizer_steps(self.batches_per_epoch, self.t)
        self.optimizer = build_optimizer(self.model, self.t, self.device)
        self.scheduler = linear_warmup_decay(self.optimizer, int(self.t.warmup_ratio * self.total_steps), self.total_steps)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.use_grad_scaler)

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        tw = self.windows["train"]
        kept = subsample_negatives(tw.has_answer, self.t.negative_window_ratio, self.t.seed, epoch)
        batches = length_grouped_batches(
            tw.lengths[kept], self.t.batch_size, group_size=self.s.features.length_group_size, seed=self.t.seed, epoch=epoch
        )
        return [[int(kept[i]) for i in b] for b in batches]

    # -- the loop ------------------------------------------------------------------------
    def fit(self, *, resume: bool, evaluate_test: bool) -> RunResult:
        t_start = time.perf_counter()
        self._setup_model()
        self._setup_data()
        self._setup_optimizer()
        atomic_write_text(self.run.settings, self.s.to_toml())
        p = self._fresh_progress()
        if resume:
            state = latest_state(self.run.state)
            if state is None:
                raise ValueError(f"nothing to resume in {self.run.root}: no complete training state under {self.run.state}")
            p = load_state(state, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, scaler=self.scaler)
            log.info("resumed from %s (epoch %d, batch %d, step %d)", state, p["epoch"], p["batch_in_epoch"], p["global_step"])
            print(f"Resumed from {state.name}: epoch {p['epoch'] + 1}, step {p['global_step']}")
        log.info("settings:\n%s", self.s.to_toml())
        print(
            f"Training {self.s.model.name} on {len(self.examples['train'])} examples ({len(self.windows['train'])} windows), "
            f"{self.total_steps} optimizer steps, {self.precision.label} on {self.device} ({self.threads} threads)"
        )
        with _stop_requests() as stop:
            while p["epoch"] < self.t.epochs and not p["done"]:
                self._run_epoch(p, stop)
                if not p["done"]:
                    p["epoch"] += 1
                    p["batch_in_epoch"] = 0
                    self._save_state(p)
        metrics = self._finish(p, evaluate_test, t_start)
        return RunResult(self.run, metrics)

    def _fresh_progress(self) -> dict[str, Any]:
        return {
            "epoch": 0,
            "batch_in_epoch": 0,
            "global_step": 0,
            "best_value": -math.inf,
            "best_step": 0,
            "best_epoch": 0,
            "bad_evals": 0,
            "history": [],
            "done": False,
            "stopped_early": False,
            "loss_sum": 0.0,
            "loss_count": 0,
            "tokens": 0,
            "train_seconds": 0.0,
        }

    def _run_epoch(self, p: dict[str, Any], stop: dict[str, Any]) -> None:
        tw = self.windows["train"]
        batches = self._epoch_batches(p["epoch"])
        skip = p["batch_in_epoch"]
        loader = window_loader(tw, batches[skip:], self.pad_id, self.t, self.device)
        accum = self.t.grad_accum_steps
        bar = tqdm(
            total=len(batches),
            initial=skip,
            desc=f"epoch {p['epoch'] + 1}/{self.t.epochs}",
            unit="batch",
            disable=not self.show_progress,
            dynamic_ncols=True,
        )
        tick = time.perf_counter()
        self.model.train()
        for i, batch in enumerate(loader, start=skip):
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            with self.precision.autocast(self.device):
                out = self.forward(**batch)
            loss = out.loss
            if not torch.isfinite(loss):
                self._non_finite(p, batches[i], loss)
            self.scaler.scale(loss / accum).backward()
            p["loss_sum"] += float(loss.detach())
            p["loss_count"] += 1
            p["tokens"] += int(batch["attention_mask"].sum())
            p["batch_in_epoch"] = i + 1
            last_of_epoch = i + 1 == len(batches)
            if (i + 1) % accum == 0 or last_of_epoch:
                self._optimizer_step()
                p["global_step"] += 1
                now = time.perf_counter()
                p["train_seconds"] += now - tick
                tick = now
                if p["global_step"] % self.t.log_every_steps == 0 or last_of_epoch:
                    bar.set_postfix(
                        loss=f"{p['loss_sum'] / max(1, p['loss_count']):.3f}",
                        lr=f"{self.scheduler.get_last_lr()[0]:.2e}",
                        tok_s=f"{p['tokens'] / max(1e-9, p['train_seconds']):.0f}",
                    )
                reached_max = bool(self.t.max_steps) and p["global_step"] >= self.t.max_steps
                if self.t.eval_every_steps and p["global_step"] % self.t.eval_every_steps == 0 and not last_of_epoch and not reached_max:
                    self._validate(p)
                    tick = time.perf_counter()
                if reached_max:
                    p["done"] = True
                if (
                    self.t.save_state_every_steps
                    and p["global_step"] % self.t.save_state_every_steps == 0
                    and not last_of_epoch
                    and not p["done"]
                ):
                    self._save_state(p)
            bar.update(1)
            if stop["signal"] is not None:
                bar.close()
                self._save_state(p)
                raise TrainingInterrupted(
                    f"{stop['signal']} received at epoch {p['epoch'] + 1}, step {p['global_step']}: state saved. "
                    f"Resume with: invoke train --resume {self.run.root}"
                )
            if p["done"] or p["stopped_early"]:
                break
        bar.close()
        p["train_seconds"] += time.perf_counter() - tick
        self._validate(p)

    def _optimizer_step(self) -> None:
        if self.t.max_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.t.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _non_finite(self, p: dict[str, Any], batch: list[int], loss: torch.Tensor) -> None:
        tw = self.windows["train"]
        ids = sorted({self.examples["train"][int(tw.example_index[w])].id for w in batch})
        raise NonFiniteLossError(
            f"non-finite loss ({float(loss.detach())}) at epoch {p['epoch'] + 1}, step {p['global_step'] + 1}, batch {p['batch_in_epoch'] + 1}; "
            f"examples in the batch: {', '.join(ids[:20])}{' ...' if len(ids) > 20 else ''}. "
            f"The last good state is in {self.run.state}; try a lower train.learning_rate or train.precision=off."
        )

    def _validate(self, p: dict[str, Any]) -> None:
        if "val" not in self.windows:
            result_metrics = {"f1": 0.0, "exact_match": 0.0, "n": 0}
            seconds = 0.0
        else:
            result = self._evaluate(self.model, "val")
            result_metrics, seconds = result.metrics, result.seconds
        entry = {
            "epoch": p["epoch"] + 1,
            "step": p["global_step"],
            "train_loss": p["loss_sum"] / max(1, p["loss_count"]),
            "val_f1": result_metrics["f1"],
            "val_exact_match": result_metrics["exact_match"],
            "train_seconds": p["train_seconds"],
            "eval_seconds": seconds,
            "train_tokens_per_second": p["tokens"] / max(1e-9, p["train_seconds"]),
        }
        p["history"].append(entry)
        p["loss_sum"], p["loss_count"], p["tokens"], p["train_seconds"] = 0.0, 0, 0, 0.0
        value = result_metrics[self.t.metric]
        improved = value > p["best_value"]
        log.info("validation %s", entry)
        tqdm.write(
            f"  epoch {entry['epoch']} step {entry['step']}: loss {entry['train_loss']:.4f}  val F1 {entry['val_f1']:.2f}  "
            f"EM {entry['val_exact_match']:.2f}  ({entry['train_tokens_per_second']:.0f} tok/s){'  * best' if improved else ''}"
        )
        if improved:
            p["best_value"], p["best_step"], p["best_epoch"], p["bad_evals"] = value, p["global_step"], p["epoch"] + 1, 0
            save_checkpoint(self.model, self.tokenizer, self.run.model, self._checkpoint_metadata(p))
        else:
            p["bad_evals"] += 1
            if self.t.patience and p["bad_evals"] >= self.t.patience:
                p["stopped_early"] = True
                p["done"] = True
                tqdm.write(f"  early stopping: no {self.t.metric} improvement in {p['bad_evals']} evaluations")
        plot_training_curves(p["history"], self.run.curves, title=f"{self.run.root.name}")
        if self.hook is not None:
            self.hook(p, result_metrics)

    def _checkpoint_metadata(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "base_model": self.s.model.name,
            "question_mode": self.s.data.question_mode,
            "epoch": p["epoch"] + 1,
            "step": p["global_step"],
            "metric": self.t.metric,
            "value": p["best_value"],
            "max_length": self.s.features.max_length,
            "doc_stride": self.s.features.doc_stride,
        }

    def _save_state(self, p: dict[str, Any]) -> None:
        save_state(self.run.state, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, scaler=self.scaler, progress=p)

    def _evaluate(self, model: torch.nn.Module, split: str) -> EvalResult:
        return evaluate_windows(
            model,
            self.examples[split],
            self.windows[split],
            self.s.features,
            batch_size=self.t.eval_batch_size,
            pad_token_id=self.pad_id,
            device=self.device,
            precision=self.precision,
        )

    # -- the end -------------------------------------------------------------------------
    def _finish(self, p: dict[str, Any], evaluate_test: bool, t_start: float) -> dict[str, Any]:
        best_model, _, _ = load_checkpoint(self.run.model, self.s.model, device=str(self.device))
        results: dict[str, EvalResult] = {}
        for split in ("val", "test") if evaluate_test else ("val",):
            if split in self.windows:
                results[split] = self._evaluate(best_model, split)
                atomic_write_json(self.run.split_predictions(split), prediction_records(self.examples[split], results[split].predictions))
        history = p["history"]
        metrics = {
            "run": self.run.root.name,
            "model": self.s.model.name,
            "question_mode": self.s.data.question_mode,
            "synthetic_data": bool(self.dataset.corpus.synthetic),
            "device": str(self.device),
            "precision": self.precision.label,
            "threads": self.threads,
            "examples": {k: len(v) for k, v in self.examples.items()},
            "windows": {k: len(v) for k, v in self.windows.items()},
            "history": history,
            "best": {"metric": self.t.metric, "value": p["best_value"], "epoch": p["best_epoch"], "step": p["best_step"]},
            "stopped_early": p["stopped_early"],
            "optimizer_steps": p["global_step"],
            "train_tokens_per_second": float(np.mean([h["train_tokens_per_second"] for h in history])) if history else 0.0,
            "val": results["val"].metrics if "val" in results else None,
            "test": results["test"].metrics if "test" in results else None,
            "baselines": {split: baseline_scores(self.examples[split]) for split in ("val", "test") if self.examples[split]},
        }
        metrics["wall_seconds"] = time.perf_counter() - t_start
        atomic_write_json(self.run.metrics, metrics)
        if "test" in results:
            atomic_write_json(self.run.split_metrics("test"), {"split": "test", **results["test"].metrics})
        log.info("finished: %s", {k: metrics[k] for k in ("best", "val", "test")})
        return metrics


def find_resumable(run_root: Path) -> Path | None:
    """The newest complete training state of a run directory, if any."""
    return latest_state(run_root / "state")
