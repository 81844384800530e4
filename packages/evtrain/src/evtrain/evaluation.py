"""Forward passes over windows, decoding to character spans, and SQuAD scoring."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

import attrs
import torch

from evdata.records import QAExample
from evfeatures.batching import collate, sorted_batches
from evfeatures.decode import Decision, Prediction, decide, decode
from evfeatures.settings import FeatureSettings
from evfeatures.windows import Windows
from evtrain.metrics import DecisionScores, best_over_golds, best_span_f1, best_threshold, decision_scores, squad_v2_scores
from evtrain.precision import PrecisionPlan
from evtrain.records import PredictionRecord, Scores, SpanRecord


@attrs.frozen
class EvalResult:
    """Scores (SQuAD 2.0 percentages at ``threshold``), one prediction and decision per example, and how long it took."""

    scores: Scores
    predictions: tuple[Prediction, ...]
    seconds: float
    windows: int
    real_tokens: int
    decisions: tuple[Decision, ...] = ()
    threshold: float = 0.0
    """The no-answer threshold applied (tuned on these examples when none was given)."""
    tuned: bool = False


def inference_model(model: torch.nn.Module, precision: PrecisionPlan) -> tuple[torch.nn.Module, PrecisionPlan]:
    """The model and plan to run inference with: a copy cast to ``precision.eval_weights_dtype`` without autocast, if set.

    With ``precision.eval_onednn_linears`` the copy's linear layers become oneDNN matmuls with bias and
    feed-forward GELU fused in (``evmodel.kernels.fuse_linears_for_cpu_inference``; a no-op off a bf16
    CPU). With ``precision.eval_cpu_attention`` its attention runs window by window
    (``evmodel.inference_attention.use_inference_attention``; also self-checked). The returned plan has no
    ``eval_weights_dtype``, so passing both on (as ``predict`` does for many chunks) casts once.
    """
    if precision.eval_weights_dtype is None:
        return model, precision
    cast = copy.deepcopy(model).to(precision.eval_weights_dtype).eval()
    if precision.eval_onednn_linears:
        from evmodel.kernels import fuse_linears_for_cpu_inference

        fuse_linears_for_cpu_inference(cast)
    if precision.eval_cpu_attention:
        from evmodel.inference_attention import use_inference_attention

        use_inference_attention(cast)
    done = {"autocast_dtype": None, "eval_weights_dtype": None, "eval_onednn_linears": False, "eval_cpu_attention": False}
    return cast, attrs.evolve(precision, **done)


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
    threshold: float | None = None,
) -> EvalResult:
    """Forward every window, decode, decide presence at ``threshold``, score against the gold answers.

    ``threshold=None`` tunes it on these examples (``best_threshold``: SQuAD 2.0 best F1); that is what
    validation does. Test and ``invoke evaluate`` pass the run's stored threshold and never re-tune.
    """
    t0 = time.perf_counter()
    start, end = window_logits(model, windows, batch_size=batch_size, pad_token_id=pad_token_id, device=device, precision=precision)
    predictions = decode(examples, windows, start, end, features, max_spans=features.max_spans)
    scores, decisions, applied = decide_and_score(examples, predictions, threshold, features.max_spans)
    return EvalResult(
        scores,
        tuple(predictions),
        time.perf_counter() - t0,
        len(windows),
        int(windows.lengths.sum()),
        decisions,
        applied,
        threshold is None,
    )


def _na_probs(examples: Sequence[QAExample], predictions: Sequence[Prediction]) -> tuple[dict, dict, dict]:
    by_id = {p.example_id: p for p in predictions}
    kept = [e for e in examples if not e.answer_unknown and e.id in by_id]
    preds = {e.id: by_id[e.id].text for e in kept}
    golds = {e.id: [a.text for a in e.answers] for e in kept}
    # A finite stand-in for "no span found" (+inf) keeps the threshold sweep and the JSON finite.
    na = {e.id: min(by_id[e.id].na_score, 1e9) for e in kept}
    return preds, golds, na


def span_f1(examples: Sequence[QAExample], predictions: Sequence[Prediction]) -> float | None:
    """SQuAD F1 (%) of each answerable example's best span, the no-answer option ignored; None without answerable examples.

    It measures how well the model locates evidence where there is some, whatever its no-answer
    calibration: early in training, when the tuned threshold still answers "no evidence" everywhere and
    SQuAD 2.0 F1 is only the no-answer share, this figure still moves with what was learned.
    """
    preds, golds, _ = _na_probs(examples, predictions)
    return best_span_f1(preds, golds)


def tune_threshold(examples: Sequence[QAExample], predictions: Sequence[Prediction]) -> float:
    """The no-answer threshold that maximises SQuAD 2.0 F1 on ``examples`` (``answer_unknown`` ones left out)."""
    preds, golds, na = _na_probs(examples, predictions)
    return float(best_threshold(preds, golds, na)) if golds else 0.0


def threshold_curve(examples: Sequence[QAExample], predictions: Sequence[Prediction], points: int = 80) -> list[tuple[float, float]]:
    """SQuAD 2.0 F1 (%) at thresholds spread over the examples' no-answer scores (for the report's plot)."""
    preds, golds, na = _na_probs(examples, predictions)
    values = sorted(v for v in na.values() if v < 1e9)
    if not values:
        return []
    lo, hi = values[0] - 1.0, values[-1] + 1.0
    grid = [lo + (hi - lo) * k / (points - 1) for k in range(points)]
    return [(t, squad_v2_scores(preds, golds, na, t).f1) for t in grid]


def decide_and_score(
    examples: Sequence[QAExample], predictions: Sequence[Prediction], threshold: float | None, max_spans: int
) -> tuple[Scores, tuple[Decision, ...], float]:
    """Decisions at ``threshold`` (tuned on these examples when None), their ``Scores`` and the threshold applied."""
    applied = tune_threshold(examples, predictions) if threshold is None else float(threshold)
    decisions = tuple(decide(p, applied, max_spans) for p in predictions)
    preds, golds, na = _na_probs(examples, predictions)
    sweep = squad_v2_scores(preds, golds, na, applied) if golds else None
    scores = scores_from_decisions(
        decision_scores(examples, decisions), applied, sweep.best_f1 if sweep else None, sweep.best_f1_thresh if sweep else None
    )
    return scores, decisions, applied


def scores_from_decisions(
    figures: DecisionScores, threshold: float | None, best_f1: float | None = None, best_f1_thresh: float | None = None
) -> Scores:
    """``Scores`` (percentages) from ``decision_scores``' figures; detection and evidence fractions become percentages."""
    q, d, e = figures.squad, figures.detection, figures.evidence
    return Scores(
        exact_match=q.exact,
        f1=q.f1,
        n=q.total,
        has_ans_exact=q.has_ans_exact,
        has_ans_f1=q.has_ans_f1,
        has_ans_total=q.has_ans_total,
        no_ans_exact=q.no_ans_exact,
        no_ans_total=q.no_ans_total,
        best_f1=best_f1,
        best_f1_thresh=best_f1_thresh,
        threshold=threshold,
        symptom_micro_f1=100.0 * d.micro_f1,
        symptom_macro_precision=100.0 * d.macro_precision,
        symptom_macro_recall=100.0 * d.macro_recall,
        symptom_macro_f1=100.0 * d.macro_f1,
        evidence_precision=100.0 * e.precision,
        evidence_recall=100.0 * e.recall,
        evidence_f1=100.0 * e.f1,
        excluded=figures.excluded,
        per_symptom=[attrs.evolve(r, precision=100.0 * r.precision, recall=100.0 * r.recall, f1=100.0 * r.f1) for r in d.per_symptom],
    )


def prediction_records(
    examples: Sequence[QAExample], predictions: Sequence[Prediction], decisions: Sequence[Decision] = ()
) -> list[PredictionRecord]:
    """The predictions/<split>.json records of DESIGN.md (plus symptom, per-example scores and the no-answer decision).

    With ``decisions`` an absent example records ``prediction_text == ""`` (start = end = 0) and is scored so.
    """
    by_id = {p.example_id: p for p in predictions}
    decided = {d.example_id: d for d in decisions}
    records = []
    for ex in examples:
        p = by_id.get(ex.id)
        d = decided.get(ex.id)
        present = d.present if d is not None else p is not None and p.score != float("-inf")
        if d is not None and not present:
            p = attrs.evolve(p, text="", start=0, end=0) if p else None
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
                present=bool(present),
                null_score=_finite(p.null_score) if p else None,
                margin=_finite(d.margin) if d is not None else None,
                spans=[SpanRecord(t, s, e, float(sc)) for t, s, e, sc in d.spans] if d is not None else [],
            )
        )
    return records


def _finite(x: float) -> float | None:
    return float(x) if x == x and abs(x) != float("inf") else None
