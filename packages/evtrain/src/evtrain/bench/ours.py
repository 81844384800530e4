"""evspan's side of the benchmark: the real training loop (``evtrain.loop.train``) and its evaluation.

Nothing is re-implemented here: the loop trains with the settings' levers (length-grouped batches
padded to their longest window, autocast precision, optional torch.compile, fused AdamW) and
validates after the last step. Evaluation is then timed on the path ``invoke evaluate`` takes: the
saved checkpoint is reloaded and ``evaluate_windows`` (forward over length-sorted batches +
vectorised decoding + SQuAD 2.0 scoring with the null threshold tuned on the evaluation examples, as
validation tunes it) runs ``eval_repeats`` times; the fastest pass counts. This module only builds the settings
for a fixed number of steps and re-derives the loop's batch plan to count padded tokens and FLOPs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from evdata.align import AlignmentResult
from evdata.dataset import Dataset
from evdata.records import Corpus, QAExample, Split
from evfeatures.batching import length_grouped_batches, padded_width
from evfeatures.windows import Windows, build_windows
from evtrain.bench.hardware import batch_flops
from evtrain.settings import RunSettings


def batch_plan(windows: Windows, settings: RunSettings, steps: int, examples: Sequence[QAExample]) -> list[list[int]]:
    """The training batches the loop takes for ``steps`` optimizer steps (one batch per step), epoch after epoch.

    Mirrors the loop's epoch order: a fresh example draw and negative subsample (``evtrain.loop.epoch_windows``) and
    length-grouped shuffle per epoch.
    """
    from evtrain.loop import epoch_windows

    t = settings.train
    plan: list[list[int]] = []
    epoch = 0
    while len(plan) < steps:
        kept = epoch_windows(windows, examples, settings, epoch)
        batches = length_grouped_batches(
            windows.lengths[kept], t.batch_size, group_size=settings.features.length_group_size, seed=t.seed, epoch=epoch
        )
        if not batches:
            raise ValueError("no training batches: the training split has no windows")
        plan.extend([[int(kept[i]) for i in b] for b in batches])
        epoch += 1
    return plan[:steps]


def epoch_examples(examples: Sequence[QAExample], settings: RunSettings, epoch: int = 0) -> list[QAExample]:
    """The examples evspan's loop trains on in epoch ``epoch``: the draw ``evtrain.loop.epoch_windows`` makes.

    Every answerable example and hard negative, ``train.no_answer_ratio`` other no-answer examples
    per answerable one (seeded per epoch), never an ``answer_unknown`` one. The bench gives the recipe
    epoch 0's draw as its training set (the loop then keeps only ``train.negative_window_ratio`` of
    their answer-less windows, an evspan lever; run_qa trains on every window).
    """
    from evtrain.loop import epoch_examples as drawn

    return [examples[int(i)] for i in drawn(examples, settings, epoch)]


def bench_settings(settings: RunSettings, *, steps: int, batch_size: int, epochs: int) -> RunSettings:
    """``settings`` for a benchmark run: exactly ``steps`` optimizer steps of ``batch_size`` windows, no early stop.

    Validation only after each epoch (the last one ends at ``steps``), no intermediate training states.
    """
    train = attrs.evolve(
        settings.train,
        batch_size=batch_size,
        grad_accum_steps=1,
        max_steps=steps,
        epochs=epochs,
        patience=0,
        eval_every_steps=0,
        save_state_every_steps=0,
    )
    return attrs.evolve(settings, train=train)


def _dataset(train: Sequence[QAExample], evaluation: Sequence[QAExample], synthetic: bool) -> Dataset:
    """A Dataset holding just the two example lists (the loop reads the split and the synthetic flag)."""
    split = Split(
        examples={"train": tuple(train), "val": tuple(evaluation), "test": ()},
        post_ids={
            "train": tuple(dict.fromkeys(e.post_id for e in train)),
            "val": tuple(dict.fromkeys(e.post_id for e in evaluation)),
            "test": (),
        },
    )
    return Dataset(
        corpus=Corpus(posts=(), annotations=(), synthetic=synthetic),
        alignment=AlignmentResult(alignments=()),
        examples=(*train, *evaluation),
        split=split,
        posts_without_evidence=0,
    )


def run_ours(
    settings: RunSettings,
    tokenizer: Any,
    config: Any,
    train_examples: Sequence[QAExample],
    eval_examples: Sequence[QAExample],
    *,
    steps: int,
    batch_size: int,
    synthetic: bool,
    output_dir: str | Path,
    eval_repeats: int = 5,
    profile_steps: int = 0,
) -> dict[str, Any]:
    """Train with evspan's loop for ``steps`` steps, validate on ``eval_examples``; throughput and scores.

    With ``profile_steps``, after the peak memory has been read, a fresh set-up trains the first
    ``profile_steps + 1`` batches of the plan under torch.profiler (the first unprofiled) through the
    functions the loop calls (``setup_model``, ``window_loader``, ``forward_backward``, ``optimizer_step``).
    """
    from evtrain.api import load_for_inference
    from evtrain.bench.hardware import peak_rss_mib
    from evtrain.loop import train
    from evtrain.runs import new_run

    train_windows = build_windows(train_examples, tokenizer, settings.features)
    sized = attrs.evolve(settings, train=attrs.evolve(settings.train, batch_size=batch_size))
    plan = batch_plan(train_windows, sized, steps, train_examples)
    epochs = math.ceil(steps / _batches_per_epoch(train_windows, sized, train_examples))
    run_settings = bench_settings(settings, steps=steps, batch_size=batch_size, epochs=epochs)
    lengths = [train_windows.lengths[b] for b in plan]
    # The width each batch is padded to (train.pad_to_multiple_of rounds it up).
    longest = int(train_windows.lengths.max())
    widths = [padded_width(int(x.max()), settings.train.pad_to_multiple_of, longest) for x in lengths]
    # The profile needs only the windows of its batches; the loop builds its own, and the bench's full
    # copy must not count in evspan's peak memory.
    profiled = _profile_batches(train_windows, plan[: profile_steps + 1]) if profile_steps else None
    del train_windows

    result = train(
        run_settings,
        _dataset(train_examples, eval_examples, synthetic),
        new_run(Path(output_dir) / "evspan-run"),
        evaluate_test=False,
        show_progress=False,
    )
    metrics = result.metrics
    eval_windows = build_windows(eval_examples, tokenizer, settings.features)
    # invoke evaluate's path: the saved checkpoint, loaded once for the timed passes and the forward profile.
    setup = load_for_inference(result.run.model, run_settings)
    evaluation = _timed_evaluations(setup, run_settings, eval_examples, eval_windows, repeats=eval_repeats)
    peak = peak_rss_mib()
    profile = _profile(run_settings, *profiled, profile_steps) if profiled else None
    eval_profile = _eval_profile(setup, run_settings, eval_windows) if profile_steps else None
    history = metrics.history
    seconds = float(sum(h.train_seconds for h in history))
    loop_tokens = round(sum(h.train_tokens_per_second * h.train_seconds for h in history))

    real_tokens = int(sum(int(x.sum()) for x in lengths))
    last = history[-1]
    return {
        "precision": metrics.precision,
        # The peak to compare against is that of the compute dtype, not of the label's wording.
        "precision_peak": metrics.precision_dtype,
        "threads": metrics.threads,
        "levers": _levers(run_settings),
        "train": {
            "steps": metrics.optimizer_steps,
            "examples": len(epoch_examples(train_examples, settings)),  # of the first epoch; each epoch draws afresh
            "seconds": seconds,
            "loss": last.train_loss,
            "windows": int(sum(len(b) for b in plan)),
            "real_tokens": loop_tokens,
            "padded_tokens": int(sum(len(x) * w for x, w in zip(lengths, widths, strict=True))),
            "useful_flops": float(sum(batch_flops(config, x) for x in lengths)),
            "executed_flops": float(sum(batch_flops(config, x, w) for x, w in zip(lengths, widths, strict=True))),
            # The plan is re-derived here; it must agree with the tokens the loop itself counted.
            "plan_matches_loop": real_tokens == loop_tokens,
        },
        "eval": {
            "examples": len(eval_examples),
            "windows": len(eval_windows),
            "real_tokens": int(eval_windows.lengths.sum()),
            "padded_tokens": _sorted_padded_tokens(eval_windows.lengths, run_settings.train.eval_batch_size),
            "useful_flops": batch_flops(config, eval_windows.lengths, training=False),
            "seconds": min(evaluation["seconds"]),
            "repeat_seconds": evaluation["seconds"],
        },
        "quality": evaluation["metrics"],
        "peak_rss_mib": peak,
        "profile": profile,
        "eval_profile": eval_profile,
    }


def _profile_batches(windows: Windows, batches: list[list[int]]) -> tuple[Windows, list[list[int]]]:
    """Just the windows ``batches`` use, and the batches as indices into them."""
    used = sorted({i for batch in batches for i in batch})
    position = {w: k for k, w in enumerate(used)}
    return windows.subset(used), [[position[i] for i in batch] for batch in batches]


def _profile(settings: RunSettings, windows: Windows, plan: list[list[int]], steps: int) -> dict[str, Any]:
    """The step profile of evspan's loop: its own set-up, loader and step functions, under torch.profiler."""
    from evtrain.bench.profile import profile_loop
    from evtrain.components import window_loader
    from evtrain.loop import forward_backward, optimizer_step, setup_model, setup_optimizer
    from evtrain.records import Progress

    m = setup_model(settings)
    opt = setup_optimizer(m, settings, steps + 1)
    batches = iter(window_loader(windows, plan[: steps + 1], m.pad_id, settings.train, m.device))
    progress = Progress()
    m.model.train()

    def step() -> None:
        forward_backward(m, opt, next(batches), 1, progress, lambda loss: FloatingPointError(f"non-finite loss {loss}"))
        optimizer_step(m, opt, settings.train.max_grad_norm)

    return profile_loop(m.model, step, warmup=1, steps=steps)


def _eval_profile(setup: Any, settings: RunSettings, windows: Windows, batches: int = 4) -> dict[str, Any]:
    """Where an evaluation forward pass's time goes (``evtrain.bench.profile.profile_forward``), ms per window.

    ``batches`` evaluation batches' worth of windows, taken evenly across the length order so their
    lengths are the split's, run through ``window_logits`` on the inference copy ``invoke evaluate`` uses
    (``setup``: ``evtrain.api.load_for_inference``'s).
    """
    import torch

    from evtrain.bench.profile import profile_forward
    from evtrain.evaluation import inference_model, window_logits

    size = min(len(windows), batches * settings.train.eval_batch_size)
    by_length = np.argsort(-windows.lengths, kind="stable")
    sample = windows.subset(sorted({int(by_length[k]) for k in np.linspace(0, len(windows) - 1, size).round().astype(int)}))
    model, plan = inference_model(setup.model, setup.precision)

    def forward() -> None:
        window_logits(
            model, sample, batch_size=settings.train.eval_batch_size, pad_token_id=setup.pad_id, device=setup.device, precision=plan
        )

    with torch.inference_mode():
        return profile_forward(model, forward, units=len(sample))


def _timed_evaluations(
    setup: Any, settings: RunSettings, examples: Sequence[QAExample], windows: Windows, *, repeats: int
) -> dict[str, Any]:
    """``invoke evaluate``'s path on the loaded checkpoint (``setup``), ``repeats`` times: forward, decode, score; and span F1."""
    from evtrain.evaluation import span_f1

    seconds: list[float] = []
    metrics: dict[str, Any] = {}
    for _ in range(repeats):
        result = setup.evaluate(examples, windows, settings)
        seconds.append(result.seconds)
        metrics = quality_figures(result.scores) | {"span_f1": span_f1(examples, result.predictions)}
    return {"seconds": seconds, "metrics": metrics}


def quality_figures(scores: Any) -> dict[str, Any]:
    """The bench's quality figures from evspan's ``Scores``: SQuAD 2.0 at the null threshold tuned on these examples."""
    return {
        "f1": scores.f1,
        "exact_match": scores.exact_match,
        "has_ans_f1": scores.has_ans_f1,
        "has_ans_exact": scores.has_ans_exact,
        "has_ans_total": scores.has_ans_total,
        "no_ans_exact": scores.no_ans_exact,
        "no_ans_total": scores.no_ans_total,
        "n": scores.n,
        "threshold": scores.threshold,
        "best_f1": scores.best_f1,
        "best_f1_thresh": scores.best_f1_thresh,
        "excluded": scores.excluded,
    }


def _batches_per_epoch(windows: Windows, settings: RunSettings, examples: Sequence[QAExample]) -> int:
    from evtrain.loop import epoch_windows

    t = settings.train
    kept = epoch_windows(windows, examples, settings, 0)
    return max(1, math.ceil(len(kept) / t.batch_size))


def _sorted_padded_tokens(lengths: np.ndarray, batch_size: int) -> int:
    from evfeatures.batching import sorted_batches

    return int(sum(len(b) * int(lengths[b].max()) for b in sorted_batches(lengths, batch_size)))


def _levers(settings: RunSettings) -> dict[str, Any]:
    """The settings that decide evspan's speed, as they were for this run."""
    t = settings.train
    return {
        "train.precision": t.precision,
        "train.compile": t.compile,
        "train.attention_dropout": t.attention_dropout,
        "train.cpu_attention": t.cpu_attention,
        "train.fast_dropout": t.fast_dropout,
        "train.gelu_recompute": t.gelu_recompute,
        "train.freeze_word_embeddings": t.freeze_word_embeddings,
        "train.pad_to_multiple_of": t.pad_to_multiple_of,
        "train.eval_cast_weights": t.eval_cast_weights,
        "train.eval_onednn_linears": t.eval_onednn_linears,
        "train.eval_cpu_attention": t.eval_cpu_attention,
        "train.num_threads": t.num_threads,
        "train.negative_window_ratio": t.negative_window_ratio,
        "model.attn_implementation": settings.model.attn_implementation,
        "features.length_group_size": settings.features.length_group_size,
        "train.eval_batch_size": t.eval_batch_size,
    }
