"""Forward passes over windows, decoding to character spans, and SQuAD scoring."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import attrs
import torch

from evdata.records import QAExample
from evfeatures.batching import collate, sorted_batches
from evfeatures.decode import Prediction, decode
from evfeatures.settings import FeatureSettings
from evfeatures.windows import Windows
from evtrain.metrics import best_over_golds, squad_scores
from evtrain.precision import PrecisionPlan
from evtrain.records import PredictionRecord, Scores, scores_from


@attrs.frozen
class EvalResult:
    """Scores (SQuAD percentages), one prediction per example, and how long it took."""

    scores: Scores
    predictions: tuple[Prediction, ...]
    seconds: float
    windows: int
    real_tokens: int


def inference_model(model: torch.nn.Module, precision: PrecisionPlan) -> tuple[torch.nn.Module, PrecisionPlan]:
    """The model and plan to run inference with: a copy cast to ``precision.eval_weights_dtype`` without autocast, if set.

    With ``precision.eval_onednn_linears`` the copy's linear layers become oneDNN matmuls with bias and
    feed-forward GELU fused in (``evmodel.kernels.fuse_linears_for_cpu_inference``; a no-op off a bf16
    CPU). The returned plan has no ``eval_weights_dtype``, so passing both on (as ``predict`` does for
    many chunks) casts once.
    """
    if precision.eval_weights_dtype is None:
        return model, precision
    cast = copy.deepcopy(model).to(precision.eval_weights_dtype).eval()
    if precision.eval_onednn_linears:
        from evmodel.kernels import fuse_linears_for_cpu_inference

        fuse_linears_for_cpu_inference(cast)
    return cast, attrs.evolve(precision, autocast_dtype=None, eval_weights_dtype=None, eval_onednn_linears=False)


@torch.inference_mode()
def window_logits(
    model: torch.nn.Module,
    windows: Windows,
    *,
    batch_size: int,
    pad_token_id: int,
    device: torch.device,
    precision: PrecisionPlan,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and end logits for every window, as float32 ``[W, L]`` tensors (L = longest window).

    Batches are sorted by length so each is padded only to its own longest member. When the plan
    says so (``train.eval_cast_weights``), a copy of the model cast to bf16 runs without autocast:
    no per-operation weight casts, half-size activations.
    """
    model, precision = inference_model(model, precision)
    was_training = model.training
    model.eval()
    width = int(windows.lengths.max()) if len(windows) else 1
    start = torch.full((len(windows), width), float("-inf"))
    end = torch.full((len(windows), width), float("-inf"))
    try:
        for batch_indices in sorted_batches(windows.lengths, batch_size):
            batch = collate(windows, batch_indices, pad_token_id, with_labels=False)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with precision.autocast(device):
                out = model(**batch)
            n = batch["input_ids"].shape[1]
            index = torch.as_tensor(batch_indices)
            start[index, :n] = out.start_logits.float().cpu()
            end[index, :n] = out.end_logits.float().cpu()
    finally:
        model.train(was_training)
    return start, end


def evaluate_windows(
    model: torch.nn.Module,
    examples: Sequence[QAExample],
    windows: Windows,
    features: FeatureSettings,
    *,
    batch_size: int,
    pad_token_id: int,
    device: torch.device,
    precision: PrecisionPlan,
) -> EvalResult:
    """Forward every window, decode each example's best span, score against its gold answers."""
    t0 = time.perf_counter()
    start, end = window_logits(model, windows, batch_size=batch_size, pad_token_id=pad_token_id, device=device, precision=precision)
    predictions = decode(examples, windows, start, end, features)
    scores = score_predictions(examples, predictions)
    return EvalResult(scores, tuple(predictions), time.perf_counter() - t0, len(windows), int(windows.lengths.sum()))


def score_predictions(examples: Sequence[QAExample], predictions: Sequence[Prediction]) -> Scores:
    """SQuAD exact match / F1 (percent) of ``predictions`` against the examples' gold answers."""
    by_id = {p.example_id: p.text for p in predictions}
    golds = {ex.id: [a.text for a in ex.answers] for ex in examples}
    return scores_from(squad_scores(by_id, golds))


def prediction_records(examples: Sequence[QAExample], predictions: Sequence[Prediction]) -> list[PredictionRecord]:
    """The predictions/<split>.json records of DESIGN.md (plus symptom and per-example scores)."""
    by_id = {p.example_id: p for p in predictions}
    records = []
    for ex in examples:
        p = by_id.get(ex.id)
        text = p.text if p else ""
        gold = [a.text for a in ex.answers]
        em, f1 = best_over_golds(text, gold)
        records.append(
            PredictionRecord(
                example_id=ex.id,
                post_id=ex.post_id,
                question=ex.question,
                symptom=ex.symptom,
                prediction_text=text,
                start=p.start if p else 0,
                end=p.end if p else 0,
                score=_finite(p.score) if p else None,
                gold_texts=gold,
                gold_spans=[(a.start, a.end) for a in ex.answers],
                exact_match=em,
                f1=f1,
            )
        )
    return records


def _finite(x: float) -> float | None:
    return float(x) if x == x and abs(x) != float("inf") else None
