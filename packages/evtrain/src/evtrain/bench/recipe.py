"""The yardstick: the Hugging Face question-answering recipe, written the way a user glues it together.

Preprocessing as in the ``run_qa`` example: each (question, context) pair is tokenized into stride
windows padded to ``max_length``, and a window is labelled with the token span of the example's
*first* answer, or the CLS index when that answer is not wholly inside it (so every window of a
no-answer example is labelled CLS, as run_qa does for SQuAD 2.0). Training uses
``AutoModelForQuestionAnswering`` and ``transformers.Trainer`` (with ``accelerate``); evaluation runs
``Trainer.predict`` over the padded windows and the ``utils_qa``-style post-processing with
``version_2_with_negative=True``: for every example, a Python double loop over the n-best start and
end indices of each of its windows, the null score the lowest CLS start + end logit over its windows,
and "" as the answer when ``null_score - best_non_null_score`` exceeds ``null_score_diff_threshold``.
That threshold is chosen as a careful user would: the official SQuAD 2.0 evaluation's
``best_f1_thresh`` on the validation examples both sides are scored on.

It runs in two configurations (``RecipeConfig``). ``PLAIN`` is the recipe as it comes: fp32, every
window padded to ``max_length``, the checkpoint's attention dropout (0.1). ``TUNED`` has the one-line
speed flags a careful user on this kind of machine turns on: ``bf16=True`` (with ``bf16_full_eval``, so
evaluation runs a bf16 model), ``train_sampling_strategy="group_by_length"`` with
``DataCollatorWithPadding`` (dynamic padding, in training and evaluation), and
``attention_probs_dropout_prob=0`` (which keeps torch's fused attention kernel).

Nothing here is evspan's own machinery except the SQuAD 2.0 scorer and its best-F1 threshold
sweep (``evtrain.metrics``), so every side is scored alike.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from evdata.records import QAExample
from evfeatures.settings import FeatureSettings
from evtrain.bench.hardware import batch_flops
from evtrain.metrics import best_span_f1, best_threshold, squad_v2_scores

_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _tokenize(examples: Sequence[QAExample], tokenizer: Any, features: FeatureSettings, *, pad: bool = True):
    # run_qa strips leading whitespace from questions: some tokenizers would otherwise waste window room on it.
    return tokenizer(
        [ex.question.lstrip() for ex in examples],
        [ex.context for ex in examples],
        truncation="only_second",
        max_length=features.max_length,
        stride=features.doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length" if pad else False,
    )


def _arrays(encoded: Any, *, pad: bool = True) -> dict[str, Any]:
    """The model inputs: ``[N, max_length]`` arrays when padded, else per-window lists (a collator pads each batch)."""
    keys = [k for k in _MODEL_INPUTS if k in encoded]
    if not pad:
        return {k: list(encoded[k]) for k in keys}
    return {k: np.asarray(encoded[k], dtype=np.int64) for k in keys}


def prepare_train_features(examples: Sequence[QAExample], tokenizer: Any, features: FeatureSettings, *, pad: bool = True) -> dict[str, Any]:
    """run_qa-style training windows plus start/end labels from each example's first answer.

    ``pad``: every window padded to ``max_length`` (run_qa's default, ``[N, max_length]`` arrays), or
    not (per-window lists, for ``DataCollatorWithPadding``: run_qa with ``--pad_to_max_length False``).
    """
    encoded = _tokenize(examples, tokenizer, features, pad=pad)
    starts: list[int] = []
    ends: list[int] = []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        ids = encoded["input_ids"][i]
        cls_index = ids.index(tokenizer.cls_token_id)
        sequence = encoded.sequence_ids(i)
        example = examples[encoded["overflow_to_sample_mapping"][i]]
        if not example.answers:
            starts.append(cls_index)
            ends.append(cls_index)
            continue
        answer = example.answers[0]
        first = sequence.index(1)
        last = len(sequence) - 1 - sequence[::-1].index(1)
        if offsets[first][0] > answer.start or offsets[last][1] < answer.end:
            starts.append(cls_index)
            ends.append(cls_index)
            continue
        # Walk in from both ends of the context to the tokens covering the answer's characters.
        token = first
        while token <= last and offsets[token][0] <= answer.start:
            token += 1
        starts.append(token - 1)
        token = last
        while token >= first and offsets[token][1] >= answer.end:
            token -= 1
        ends.append(token + 1)
    arrays = _arrays(encoded, pad=pad)
    arrays["start_positions"] = np.asarray(starts, dtype=np.int64)
    arrays["end_positions"] = np.asarray(ends, dtype=np.int64)
    return arrays


def prepare_eval_features(examples: Sequence[QAExample], tokenizer: Any, features: FeatureSettings, *, pad: bool = True) -> dict[str, Any]:
    """run_qa-style evaluation windows: inputs (padded or not, as for training), the example of each window, offsets (None outside the context)."""
    encoded = _tokenize(examples, tokenizer, features, pad=pad)
    offsets = []
    for i, window_offsets in enumerate(encoded["offset_mapping"]):
        sequence = encoded.sequence_ids(i)
        offsets.append([tuple(o) if sequence[k] == 1 else None for k, o in enumerate(window_offsets)])
    arrays: dict[str, Any] = _arrays(encoded, pad=pad)
    arrays["example_index"] = np.asarray(encoded["overflow_to_sample_mapping"], dtype=np.int64)
    arrays["offset_mapping"] = offsets
    return arrays


def postprocess_predictions(
    examples: Sequence[QAExample],
    features: dict[str, Any],
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    *,
    n_best_size: int,
    max_answer_length: int,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> tuple[dict[str, str], dict[str, float]]:
    """utils_qa-style decoding: per example, a double loop over each window's n-best start and end indices.

    Returns ``(predictions, scores_diff)``: the answer text per example id, and (with
    ``version_2_with_negative``) per example id ``null_score - best_non_null_score``, what utils_qa
    writes to ``null_odds.json``. Like utils_qa it ranks an n-best list and turns its scores into
    probabilities. Without ``version_2_with_negative`` the answer is the best span ("" when no
    window holds a valid span) and ``scores_diff`` is empty. With it, as utils_qa does for SQuAD
    2.0, each window's CLS start + end logit is a null candidate, the example's null score is the
    minimum of them over its windows, and the answer is "" when ``null_score - best_non_null_score
    > null_score_diff_threshold``. Where no window holds a valid span the best non-null score counts
    as -inf, so the answer is "" (utils_qa would insert a placeholder "empty" scored 0 instead; with
    an n-best of 20 over a real context that never arises).
    """
    windows_of: dict[int, list[int]] = {}
    for w, e in enumerate(features["example_index"].tolist()):
        windows_of.setdefault(e, []).append(w)
    answers: dict[str, str] = {}
    scores_diff: dict[str, float] = {}
    for e, example in enumerate(examples):
        min_null_prediction = None
        candidates = []
        for w in windows_of.get(e, []):
            offsets = features["offset_mapping"][w]
            start_row, end_row = start_logits[w], end_logits[w]
            # utils_qa: the CLS token (index 0) scores "no answer in this window"; the example keeps its lowest.
            feature_null_score = start_row[0] + end_row[0]
            if min_null_prediction is None or min_null_prediction["score"] > feature_null_score:
                min_null_prediction = {"offsets": (0, 0), "score": feature_null_score}
            start_indexes = np.argsort(start_row)[-1 : -n_best_size - 1 : -1].tolist()
            end_indexes = np.argsort(end_row)[-1 : -n_best_size - 1 : -1].tolist()
            for s in start_indexes:
                for t in end_indexes:
                    if s >= len(offsets) or t >= len(offsets) or offsets[s] is None or offsets[t] is None:
                        continue
                    if t < s or t - s + 1 > max_answer_length:
                        continue
                    candidates.append({"offsets": (offsets[s][0], offsets[t][1]), "score": start_row[s] + end_row[t]})
        if version_2_with_negative and min_null_prediction is not None:
            candidates.append(min_null_prediction)
            null_score = min_null_prediction["score"]
        best = sorted(candidates, key=lambda c: c["score"], reverse=True)[:n_best_size]
        if version_2_with_negative and min_null_prediction is not None and not any(c is min_null_prediction for c in best):
            best.append(min_null_prediction)
        for candidate in best:
            start_char, end_char = candidate["offsets"]
            candidate["text"] = example.context[start_char:end_char]
        if best:
            scores = np.array([c["score"] for c in best])
            probabilities = np.exp(scores - scores.max())
            probabilities /= probabilities.sum()
            for candidate, p in zip(best, probabilities):
                candidate["probability"] = float(p)
        non_null = [c for c in best if c is not min_null_prediction]
        if not version_2_with_negative:
            answers[example.id] = non_null[0]["text"] if non_null else ""
            continue
        if min_null_prediction is None:  # no window at all: nothing to answer with
            answers[example.id] = ""
            scores_diff[example.id] = float("inf")
            continue
        best_non_null_score = non_null[0]["score"] if non_null else float("-inf")
        score_diff = float(null_score - best_non_null_score)
        scores_diff[example.id] = score_diff
        if score_diff > null_score_diff_threshold or not non_null:
            answers[example.id] = ""
        else:
            answers[example.id] = non_null[0]["text"]
    return answers, scores_diff


def tune_null_threshold(
    best_non_null: dict[str, str], scores_diff: dict[str, float], golds: dict[str, list[str]]
) -> tuple[float, dict[str, Any]]:
    """The careful user's null threshold: the one that maximises SQuAD 2.0 F1 on these (validation) examples.

    ``best_non_null`` are the predictions post-processed with no null threshold (an infinite one),
    ``scores_diff`` their null odds, ``golds`` the gold texts of the examples to score ([] = no
    answer). Returns the threshold (the official evaluation's ``best_f1_thresh``, as
    ``evtrain.metrics.best_threshold`` computes it) and the official evaluation's figures at it.
    """
    na_probs = {i: scores_diff[i] for i in golds}
    threshold = best_threshold(best_non_null, golds, na_probs) if golds else 0.0
    # utils_qa's rule at that threshold ("" when null_score - best_non_null_score > threshold), then the official scorer.
    answers = {i: "" if na_probs[i] > threshold else best_non_null.get(i, "") for i in golds}
    applied = squad_v2_scores(answers, golds)
    sweep = squad_v2_scores(best_non_null, golds, na_probs)
    return threshold, {
        "f1": applied.f1,
        "exact_match": applied.exact,
        "has_ans_f1": applied.has_ans_f1,
        "has_ans_exact": applied.has_ans_exact,
        "has_ans_total": applied.has_ans_total,
        "no_ans_exact": applied.no_ans_exact,
        "no_ans_total": applied.no_ans_total,
        "n": applied.total,
        "threshold": threshold,
        "best_f1": sweep.best_f1,
        "best_f1_thresh": sweep.best_f1_thresh,
    }


class _Windows(torch.utils.data.Dataset):
    """Feature arrays as a map-style dataset of per-window items (what Trainer iterates).

    Padded arrays give tensors (for ``default_data_collator``); unpadded lists give lists (for
    ``DataCollatorWithPadding``, which also lets ``group_by_length`` read each window's length).
    """

    def __init__(self, arrays: dict[str, Any], keys: Sequence[str]) -> None:
        self.arrays = {k: torch.from_numpy(arrays[k]) if isinstance(arrays[k], np.ndarray) else arrays[k] for k in keys if k in arrays}

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {k: v[i] for k, v in self.arrays.items()}


@attrs.frozen
class RecipeConfig:
    """How the recipe is run: as it comes (``PLAIN``) or with the speed flags a careful user turns on (``TUNED``)."""

    name: str
    bf16: bool
    """``TrainingArguments(bf16=True, bf16_full_eval=True)``: bf16 autocast in training, a bf16 model in evaluation."""
    dynamic_padding: bool
    """``DataCollatorWithPadding`` (each batch padded to its longest window) instead of every window padded to ``max_length``."""
    group_by_length: bool
    """``TrainingArguments(train_sampling_strategy="group_by_length")``: batches of similar lengths (and, in transformers 5, length-grouped evaluation)."""
    attention_dropout: float | None
    """``attention_probs_dropout_prob`` given to ``from_pretrained``; None keeps the checkpoint's (0.1 for MiniLM)."""

    def describe(self) -> str:
        """One line saying exactly what this side ran."""
        if not (self.bf16 or self.dynamic_padding or self.group_by_length or self.attention_dropout is not None):
            return "Trainer defaults: fp32, every window padded to max_length, the checkpoint's attention dropout"
        parts = []
        if self.bf16:
            parts.append("bf16=True + bf16_full_eval=True")
        if self.group_by_length:
            parts.append('train_sampling_strategy="group_by_length"')
        if self.dynamic_padding:
            parts.append("DataCollatorWithPadding")
        if self.attention_dropout is not None:
            parts.append(f"attention_probs_dropout_prob={self.attention_dropout:g}")
        return ", ".join(parts)


@attrs.frozen
class Hyper:
    """The optimisation settings the recipe's ``TrainingArguments`` take from evspan's, the same on every side."""

    batch_size: int
    eval_batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_steps: int
    max_grad_norm: float
    seed: int


PLAIN = RecipeConfig("recipe_plain", bf16=False, dynamic_padding=False, group_by_length=False, attention_dropout=None)
TUNED = RecipeConfig("recipe_tuned", bf16=True, dynamic_padding=True, group_by_length=True, attention_dropout=0.0)


def run_recipe(
    model_path: str | Path,
    tokenizer: Any,
    features: FeatureSettings,
    train_examples: Sequence[QAExample],
    eval_examples: Sequence[QAExample],
    *,
    recipe: RecipeConfig,
    hyper: Hyper,
    steps: int,
    output_dir: str | Path,
    eval_repeats: int = 5,
    profile_steps: int = 0,
) -> dict[str, Any]:
    """Train the recipe for ``steps`` optimizer steps, then predict and post-process the evaluation examples.

    ``train_examples`` are all trained on (windows without the answer labelled CLS). Evaluation
    (forward, SQuAD 2.0 post-processing, null threshold tuned on ``eval_examples``, scoring) runs
    ``eval_repeats`` times; the fastest pass is reported. Examples with ``answer_unknown`` are
    forwarded but not scored, as on evspan's side. With ``profile_steps``, a fresh copy of the set-up
    then trains ``profile_steps + 1`` steps under torch.profiler (the first one unprofiled), after the
    peak memory has been read.

    Returns throughput (real and padded tokens, windows, seconds, FLOPs) for training and
    evaluation, the validation scores, the peak resident memory and the step profile.
    """
    from transformers import DataCollatorWithPadding, set_seed

    from evtrain.bench.hardware import peak_rss_mib

    set_seed(hyper.seed)
    pad = not recipe.dynamic_padding
    train_arrays = prepare_train_features(train_examples, tokenizer, features, pad=pad)
    eval_arrays = prepare_eval_features(eval_examples, tokenizer, features, pad=pad)
    collator = DataCollatorWithPadding(tokenizer) if recipe.dynamic_padding else None
    train_data = _Windows(train_arrays, (*_MODEL_INPUTS, "start_positions", "end_positions"))
    eval_data = _Windows(eval_arrays, _MODEL_INPUTS)

    def trainer_for(max_steps: int, callbacks: list[Any], run_dir: str) -> Any:
        return _trainer(model_path, tokenizer, recipe, hyper, train_data, collator, callbacks, Path(output_dir) / run_dir, max_steps)

    counted = {"windows": 0, "real_tokens": 0, "padded_tokens": 0, "useful_flops": 0.0, "executed_flops": 0.0}
    clock: dict[str, float] = {}
    trainer = trainer_for(steps, [_clock(clock)], "trainer")
    model = trainer.model
    hook = model.register_forward_pre_hook(_batch_counter(model.config, counted), with_kwargs=True)
    output = trainer.train()
    hook.remove()
    train_seconds = clock["end"] - clock["start"]

    # Scored as evspan scores: examples whose evidence could not be located are neither positive nor negative.
    golds = {ex.id: [a.text for a in ex.answers] for ex in eval_examples if not ex.answer_unknown}
    window_lengths = np.asarray([int(sum(m)) for m in eval_arrays["attention_mask"]], dtype=np.int64)
    eval_flops = batch_flops(model.config, window_lengths, training=False)
    timings: list[tuple[float, float, float]] = []
    for _ in range(eval_repeats):
        t0 = time.perf_counter()
        prediction = trainer.predict(eval_data)
        order = _prediction_order(trainer, eval_data)
        start_logits, end_logits = (_in_window_order(logits, order) for logits in prediction.predictions[:2])
        t1 = time.perf_counter()
        # The SQuAD 2.0 path with no threshold yet: each example's best non-null answer and its null odds.
        best_non_null, scores_diff = postprocess_predictions(
            eval_examples,
            eval_arrays,
            start_logits,
            end_logits,
            n_best_size=features.n_best_size,
            max_answer_length=features.max_answer_length,
            version_2_with_negative=True,
            null_score_diff_threshold=float("inf"),
        )
        t2 = time.perf_counter()
        _, scores = tune_null_threshold(best_non_null, scores_diff, golds)
        t3 = time.perf_counter()
        timings.append((t3 - t0, t1 - t0, t2 - t1))
    # The fastest pass by total time, with its forward and decoding shares.
    total, forward, decoding = min(timings)
    peak = peak_rss_mib()

    profile = None
    if profile_steps:
        from evtrain.bench.profile import trainer_profiler

        del trainer, model
        set_seed(hyper.seed)
        fresh = trainer_for(profile_steps + 1, [], "profile")
        callback, profiled = trainer_profiler(fresh.model, warmup=1, steps=profile_steps)
        fresh.add_callback(callback)
        fresh.train()
        profile = profiled.get("profile")

    padded_eval = int(len(window_lengths) * features.max_length) if pad else _padded_in_order(window_lengths, order, hyper.eval_batch_size)
    return {
        "precision": "bf16 autocast (train), bf16 model (eval)" if recipe.bf16 else "fp32",
        "precision_peak": "bf16" if recipe.bf16 else "fp32",
        "recipe": recipe.describe(),
        "threads": torch.get_num_threads(),
        "train": {
            "steps": int(output.global_step),
            "seconds": train_seconds,
            "loss": float(output.training_loss),
            **counted,
        },
        "eval": {
            "examples": len(eval_examples),
            "windows": len(window_lengths),
            "real_tokens": int(window_lengths.sum()),
            "padded_tokens": padded_eval,
            "useful_flops": eval_flops,
            "seconds": total,
            "forward_seconds": forward,
            "decode_seconds": decoding,
            "repeat_seconds": [t[0] for t in timings],
        },
        # Each answerable example's best span, the no-answer option ignored (evtrain.evaluation.span_f1 on evspan's side).
        "quality": {**scores, "span_f1": best_span_f1(best_non_null, golds), "excluded": len(eval_examples) - len(golds)},
        "peak_rss_mib": peak,
        "profile": profile,
    }


def _trainer(
    model_path: str | Path,
    tokenizer: Any,
    recipe: RecipeConfig,
    hyper: Hyper,
    train_data: torch.utils.data.Dataset,
    collator: Any,
    callbacks: list[Any],
    output_dir: Path,
    max_steps: int,
) -> Any:
    """A ``Trainer`` over a fresh ``AutoModelForQuestionAnswering``, configured as ``recipe`` says."""
    from transformers import AutoModelForQuestionAnswering, Trainer, TrainingArguments, default_data_collator

    config_changes = {} if recipe.attention_dropout is None else {"attention_probs_dropout_prob": recipe.attention_dropout}
    model = AutoModelForQuestionAnswering.from_pretrained(model_path, dtype=torch.float32, **config_changes)
    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=hyper.batch_size,
        per_device_eval_batch_size=hyper.eval_batch_size,
        gradient_accumulation_steps=1,
        learning_rate=hyper.learning_rate,
        weight_decay=hyper.weight_decay,
        warmup_steps=hyper.warmup_steps,
        lr_scheduler_type="linear",
        max_grad_norm=hyper.max_grad_norm,
        max_steps=max_steps,
        seed=hyper.seed,
        bf16=recipe.bf16,
        bf16_full_eval=recipe.bf16,
        train_sampling_strategy="group_by_length" if recipe.group_by_length else "random",
        use_cpu=not torch.cuda.is_available(),
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    return Trainer(
        model=model,
        args=args,
        train_dataset=train_data,
        data_collator=collator if collator is not None else default_data_collator,
        processing_class=tokenizer if recipe.group_by_length else None,
        callbacks=callbacks,
    )


def _clock(clock: dict[str, float]) -> Any:
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            clock["start"] = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            clock["end"] = time.perf_counter()

    return Clock()


def _batch_counter(config: Any, counted: dict[str, Any]) -> Any:
    def count_batch(module, args, kwargs):
        # Counted where the model is fed: accelerate's loader collates one batch ahead of training.
        mask, ids = kwargs.get("attention_mask"), kwargs.get("input_ids")
        if module.training and mask is not None and ids is not None:
            lengths = mask.sum(dim=1).tolist()
            width = int(ids.shape[1])
            counted["windows"] += len(lengths)
            counted["real_tokens"] += int(sum(lengths))
            counted["padded_tokens"] += len(lengths) * width
            counted["useful_flops"] += batch_flops(config, lengths)
            counted["executed_flops"] += batch_flops(config, lengths, width)

    return count_batch


def _prediction_order(trainer: Any, data: torch.utils.data.Dataset) -> list[int] | None:
    """The window order ``Trainer.predict`` used, or None when it kept the dataset's order.

    With ``group_by_length`` transformers 5 also groups the evaluation windows by length, with a sampler
    seeded from the arguments, so a fresh sampler yields the order the prediction used.
    """
    if trainer.args.train_sampling_strategy != "group_by_length":
        return None
    order = [int(i) for i in trainer._get_eval_sampler(data)]
    if sorted(order) != list(range(len(data))):
        raise RuntimeError("the Trainer's evaluation sampler is not a permutation of the windows")
    return order


def _in_window_order(logits: np.ndarray, order: list[int] | None) -> np.ndarray:
    if order is None:
        return logits
    out = np.empty_like(logits)
    out[np.asarray(order)] = logits
    return out


def _padded_in_order(lengths: np.ndarray, order: list[int] | None, batch_size: int) -> int:
    """Tokens the forward pass computed: each batch (in prediction order) padded to its longest window."""
    ordered = lengths if order is None else lengths[np.asarray(order)]
    return int(sum(len(b) * int(b.max()) for b in (ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size))))
