"""The yardstick: the Hugging Face question-answering recipe, written the way a user glues it together.

Preprocessing as in the ``run_qa`` example: each (question, context) pair is tokenized into stride
windows padded to ``max_length``, and a window is labelled with the token span of the example's
*first* answer, or the CLS index when that answer is not wholly inside it. Training uses
``AutoModelForQuestionAnswering`` and ``transformers.Trainer`` (with ``accelerate``); evaluation runs
``Trainer.predict`` over the padded windows and the ``utils_qa``-style post-processing: for every
example, a Python double loop over the n-best start and end indices of each of its windows.

Nothing here is evspan's own machinery except the SQuAD scorer, so both sides are scored alike.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evdata.records import QAExample
from evfeatures.settings import FeatureSettings
from evtrain.bench.hardware import batch_flops
from evtrain.metrics import squad_scores


def _tokenize(examples: Sequence[QAExample], tokenizer: Any, features: FeatureSettings):
    # run_qa strips leading whitespace from questions: some tokenizers would otherwise waste window room on it.
    return tokenizer(
        [ex.question.lstrip() for ex in examples],
        [ex.context for ex in examples],
        truncation="only_second",
        max_length=features.max_length,
        stride=features.doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )


def _arrays(encoded: Any) -> dict[str, np.ndarray]:
    arrays = {
        "input_ids": np.asarray(encoded["input_ids"], dtype=np.int64),
        "attention_mask": np.asarray(encoded["attention_mask"], dtype=np.int64),
    }
    if "token_type_ids" in encoded:
        arrays["token_type_ids"] = np.asarray(encoded["token_type_ids"], dtype=np.int64)
    return arrays


def prepare_train_features(examples: Sequence[QAExample], tokenizer: Any, features: FeatureSettings) -> dict[str, np.ndarray]:
    """run_qa-style training windows: ``[N, max_length]`` arrays plus start/end labels from each example's first answer."""
    encoded = _tokenize(examples, tokenizer, features)
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
    arrays = _arrays(encoded)
    arrays["start_positions"] = np.asarray(starts, dtype=np.int64)
    arrays["end_positions"] = np.asarray(ends, dtype=np.int64)
    return arrays


def prepare_eval_features(examples: Sequence[QAExample], tokenizer: Any, features: FeatureSettings) -> dict[str, Any]:
    """run_qa-style evaluation windows: padded arrays, the example of each window, offsets (None outside the context)."""
    encoded = _tokenize(examples, tokenizer, features)
    offsets = []
    for i, window_offsets in enumerate(encoded["offset_mapping"]):
        sequence = encoded.sequence_ids(i)
        offsets.append([tuple(o) if sequence[k] == 1 else None for k, o in enumerate(window_offsets)])
    arrays: dict[str, Any] = _arrays(encoded)
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
) -> dict[str, str]:
    """utils_qa-style decoding: per example, a double loop over each window's n-best start and end indices.

    Returns the best span's text per example id ("" when no window holds a valid span). Like
    utils_qa it also ranks an n-best list and turns its scores into probabilities.
    """
    windows_of: dict[int, list[int]] = {}
    for w, e in enumerate(features["example_index"].tolist()):
        windows_of.setdefault(e, []).append(w)
    answers: dict[str, str] = {}
    for e, example in enumerate(examples):
        candidates = []
        for w in windows_of.get(e, []):
            offsets = features["offset_mapping"][w]
            start_row, end_row = start_logits[w], end_logits[w]
            start_indexes = np.argsort(start_row)[-1 : -n_best_size - 1 : -1].tolist()
            end_indexes = np.argsort(end_row)[-1 : -n_best_size - 1 : -1].tolist()
            for s in start_indexes:
                for t in end_indexes:
                    if s >= len(offsets) or t >= len(offsets) or offsets[s] is None or offsets[t] is None:
                        continue
                    if t < s or t - s + 1 > max_answer_length:
                        continue
                    candidates.append({"offsets": (offsets[s][0], offsets[t][1]), "score": start_row[s] + end_row[t]})
        best = sorted(candidates, key=lambda c: c["score"], reverse=True)[:n_best_size]
        for candidate in best:
            candidate["text"] = example.context[candidate["offsets"][0] : candidate["offsets"][1]]
        if best:
            scores = np.array([c["score"] for c in best])
            probabilities = np.exp(scores - scores.max())
            probabilities /= probabilities.sum()
            for candidate, p in zip(best, probabilities):
                candidate["probability"] = float(p)
        answers[example.id] = best[0]["text"] if best else ""
    return answers


class _Windows(torch.utils.data.Dataset):
    """Padded feature arrays as a map-style dataset of per-window tensors (what Trainer iterates)."""

    def __init__(self, arrays: dict[str, np.ndarray], keys: Sequence[str]) -> None:
        self.arrays = {k: torch.from_numpy(arrays[k]) for k in keys if k in arrays}

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.arrays.items()}


_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def run_recipe(
    model_path: str | Path,
    tokenizer: Any,
    features: FeatureSettings,
    train_examples: Sequence[QAExample],
    eval_examples: Sequence[QAExample],
    *,
    steps: int,
    batch_size: int,
    eval_batch_size: int,
    learning_rate: float,
    weight_decay: float,
    warmup_steps: int,
    max_grad_norm: float,
    seed: int,
    bf16: bool,
    output_dir: str | Path,
    eval_repeats: int = 5,
) -> dict[str, Any]:
    """Train the recipe for ``steps`` optimizer steps, then predict and post-process the evaluation examples.

    Evaluation runs ``eval_repeats`` times; the fastest pass is reported.

    Returns throughput (real and padded tokens, windows, seconds, FLOPs) for training and
    evaluation, and the validation scores.
    """
    from transformers import AutoModelForQuestionAnswering, Trainer, TrainerCallback, TrainingArguments, default_data_collator, set_seed

    set_seed(seed)
    train_arrays = prepare_train_features(train_examples, tokenizer, features)
    eval_arrays = prepare_eval_features(eval_examples, tokenizer, features)
    model = AutoModelForQuestionAnswering.from_pretrained(model_path, dtype=torch.float32)
    config = model.config

    counted = {"windows": 0, "real_tokens": 0, "padded_tokens": 0, "useful_flops": 0.0, "executed_flops": 0.0}

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

    clock: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            clock["start"] = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            clock["end"] = time.perf_counter()

    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=eval_batch_size,
        gradient_accumulation_steps=1,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        warmup_steps=warmup_steps,
        lr_scheduler_type="linear",
        max_grad_norm=max_grad_norm,
        max_steps=steps,
        seed=seed,
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_Windows(train_arrays, (*_MODEL_INPUTS, "start_positions", "end_positions")),
        data_collator=default_data_collator,
        callbacks=[Clock()],
    )
    hook = model.register_forward_pre_hook(count_batch, with_kwargs=True)
    output = trainer.train()
    hook.remove()
    train_seconds = clock["end"] - clock["start"]

    timings: list[tuple[float, float, float]] = []
    for _ in range(eval_repeats):
        t0 = time.perf_counter()
        prediction = trainer.predict(_Windows(eval_arrays, _MODEL_INPUTS))
        t1 = time.perf_counter()
        start_logits, end_logits = prediction.predictions[:2]
        answers = postprocess_predictions(
            eval_examples,
            eval_arrays,
            start_logits,
            end_logits,
            n_best_size=features.n_best_size,
            max_answer_length=features.max_answer_length,
        )
        t2 = time.perf_counter()
        scores = squad_scores(answers, {ex.id: [a.text for a in ex.answers] for ex in eval_examples})
        t3 = time.perf_counter()
        timings.append((t3 - t0, t1 - t0, t2 - t1))
    # The fastest pass by total time, with its forward and decoding shares.
    total, forward, decoding = min(timings)

    eval_lengths = eval_arrays["attention_mask"].sum(axis=1)
    return {
        "precision": "bf16 autocast" if bf16 else "fp32",
        "precision_peak": "bf16" if bf16 else "fp32",
        "threads": torch.get_num_threads(),
        "train": {
            "steps": int(output.global_step),
            "seconds": train_seconds,
            "loss": float(output.training_loss),
            **counted,
        },
        "eval": {
            "examples": len(eval_examples),
            "windows": len(eval_lengths),
            "real_tokens": int(eval_lengths.sum()),
            "padded_tokens": int(eval_arrays["input_ids"].size),
            "seconds": total,
            "forward_seconds": forward,
            "decode_seconds": decoding,
            "repeat_seconds": [t[0] for t in timings],
        },
        "quality": scores,
    }
