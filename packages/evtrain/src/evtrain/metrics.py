"""SQuAD-style exact match and token F1 (per example the best over all gold answers), SQuAD 2.0 no-answer
figures and threshold tuning, post-level symptom detection, and evidence-span precision / recall.

Pure Python: no torch, so the figures can be recomputed from saved predictions anywhere.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import attrs

from evdata.records import SYMPTOMS, QAExample
from evtrain.records import SymptomRow

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, strip punctuation, drop the articles a/an/the, collapse whitespace (the SQuAD rules)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall after normalisation."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        # Both empty counts as agreement (SQuAD v2's rule for no-answer).
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    """(exact match, F1) of one prediction: the best score over its gold answers."""
    if not golds:
        golds = [""]
    return max(exact_match(prediction, g) for g in golds), max(token_f1(prediction, g) for g in golds)


def squad_scores(predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Corpus-level ``exact_match`` and ``f1`` as percentages, and ``n``, over the examples in ``golds``.

    An example without a prediction counts as an empty prediction.
    """
    n = len(golds)
    if n == 0:
        return {"exact_match": 0.0, "f1": 0.0, "n": 0}
    em_total = f1_total = 0.0
    for example_id, gold_texts in golds.items():
        em, f1 = best_over_golds(predictions.get(example_id, ""), gold_texts)
        em_total += em
        f1_total += f1
    return {"exact_match": 100.0 * em_total / n, "f1": 100.0 * f1_total / n, "n": n}


# --- SQuAD 2.0: no-answer examples, the null threshold, and its tuning -----------------------------------


@attrs.frozen
class SquadV2Scores:
    """SQuAD 2.0 figures (percentages) over a set of examples, as the official evaluation script reports them.

    ``has_ans_*`` cover examples with gold answers, ``no_ans_*`` those without (``*_total`` counts
    them; a part with no examples scores 0). ``best_*`` are the scores at the best no-answer
    threshold and that threshold, as the official ``find_best_thresh`` finds them; None when no
    no-answer scores were given.
    """

    exact: float
    f1: float
    total: int
    has_ans_exact: float
    has_ans_f1: float
    has_ans_total: int
    no_ans_exact: float
    no_ans_f1: float
    no_ans_total: int
    best_exact: float | None = None
    best_exact_thresh: float | None = None
    best_f1: float | None = None
    best_f1_thresh: float | None = None

    def official(self) -> dict[str, float | int]:
        """The figures under the official script's names (``exact``, ``HasAns_f1``, ``best_f1_thresh``, ...), parts it omits left out."""
        out: dict[str, float | int] = {"exact": self.exact, "f1": self.f1, "total": self.total}
        if self.has_ans_total:
            out |= {"HasAns_exact": self.has_ans_exact, "HasAns_f1": self.has_ans_f1, "HasAns_total": self.has_ans_total}
        if self.no_ans_total:
            out |= {"NoAns_exact": self.no_ans_exact, "NoAns_f1": self.no_ans_f1, "NoAns_total": self.no_ans_total}
        if self.best_f1 is not None:
            out |= {
                "best_exact": self.best_exact,
                "best_exact_thresh": self.best_exact_thresh,
                "best_f1": self.best_f1,
                "best_f1_thresh": self.best_f1_thresh,
            }
        return out  # type: ignore[return-value]


def _v2_raw_scores(preds: Mapping[str, str], golds: Mapping[str, Sequence[str]]) -> tuple[dict[str, float], dict[str, float]]:
    """Per example (exact, F1) before any no-answer threshold, by the SQuAD 2.0 rules.

    Gold answers that normalise to nothing are dropped; an example left with none is scored against
    the empty answer, so an empty prediction scores 1 and any other 0. A missing prediction is empty.
    """
    exact: dict[str, float] = {}
    f1: dict[str, float] = {}
    for example_id, gold_texts in golds.items():
        usable = [g for g in gold_texts if normalize_answer(g)] or [""]
        prediction = preds.get(example_id, "")
        exact[example_id] = max(exact_match(prediction, g) for g in usable)
        f1[example_id] = max(token_f1(prediction, g) for g in usable)
    return exact, f1


def _checked_na_probs(na_probs: Mapping[str, float], golds: Mapping[str, Sequence[str]]) -> None:
    missing = [example_id for example_id in golds if example_id not in na_probs]
    if missing:
        raise ValueError(f"na_probs: no value for {len(missing)} example(s), e.g. {missing[0]!r}")
    bad = [example_id for example_id in golds if na_probs[example_id] != na_probs[example_id]]
    if bad:
        raise ValueError(f"na_probs: NaN for example {bad[0]!r}")


def _official_best(
    preds: Mapping[str, str], raw: Mapping[str, float], na_probs: Mapping[str, float], has_ans: Mapping[str, bool]
) -> tuple[float, float]:
    """The official ``find_best_thresh`` sweep: (best score in percent, its threshold).

    Start from "no answer everywhere" (each no-answer example scores 1) with threshold 0.0, then
    answer the examples in rising order of na_prob (a stable sort, so ties keep their order),
    updating the best whenever the running score strictly improves; a no-answer example that gets
    answered costs 1 if its prediction is non-empty (the raw string, not normalised).
    """
    score = best = float(sum(1 for example_id in raw if not has_ans[example_id]))
    threshold = 0.0
    for example_id in sorted(na_probs, key=na_probs.__getitem__):
        if example_id not in raw:
            continue
        if has_ans[example_id]:
            score += raw[example_id]
        elif preds.get(example_id, ""):
            score -= 1
        if score > best:
            best, threshold = score, na_probs[example_id]
    return 100.0 * best / len(raw), threshold


def squad_v2_scores(
    preds: Mapping[str, str],
    golds: Mapping[str, Sequence[str]],
    na_probs: Mapping[str, float] | None = None,
    threshold: float = 0.0,
) -> SquadV2Scores:
    """SQuAD 2.0 exact match and F1 (percent) over the examples in ``golds``, with HasAns/NoAns parts and the best threshold.

    ``golds`` maps each example to its gold answer texts; an empty list is a no-answer example.
    ``preds`` holds each example's best non-null answer text (missing counts as ``""``). With
    ``na_probs`` (SQuAD's name for a no-answer score, here ``null_score - best span score``) an
    example whose value exceeds ``threshold`` is predicted to have no answer, so it scores 1 when
    it has none and 0 otherwise; ``best_*`` then come from the official threshold sweep. Without
    ``na_probs`` the predictions are scored as they are (``""`` means "no answer"). The rules are
    the official evaluation script's (``normalize_answer``; gold answers that normalise to nothing
    are dropped; F1 of two empty answers is 1, of one empty answer 0).
    """
    exact_raw, f1_raw = _v2_raw_scores(preds, golds)
    has_ans = {example_id: bool(gold_texts) for example_id, gold_texts in golds.items()}
    exact, f1 = dict(exact_raw), dict(f1_raw)
    if na_probs is not None:
        _checked_na_probs(na_probs, golds)
        for example_id in golds:
            if na_probs[example_id] > threshold:
                exact[example_id] = f1[example_id] = float(not has_ans[example_id])

    def percent(values: Mapping[str, float], ids: list[str]) -> float:
        return 100.0 * sum(values[i] for i in ids) / len(ids) if ids else 0.0

    every = list(golds)
    answered = [i for i in every if has_ans[i]]
    unanswered = [i for i in every if not has_ans[i]]
    best: dict[str, float | None] = {"best_exact": None, "best_exact_thresh": None, "best_f1": None, "best_f1_thresh": None}
    if na_probs is not None and every:
        best["best_exact"], best["best_exact_thresh"] = _official_best(preds, exact_raw, na_probs, has_ans)
        best["best_f1"], best["best_f1_thresh"] = _official_best(preds, f1_raw, na_probs, has_ans)
    return SquadV2Scores(
        exact=percent(exact, every),
        f1=percent(f1, every),
        total=len(every),
        has_ans_exact=percent(exact, answered),
        has_ans_f1=percent(f1, answered),
        has_ans_total=len(answered),
        no_ans_exact=percent(exact, unanswered),
        no_ans_f1=percent(f1, unanswered),
        no_ans_total=len(unanswered),
        **best,
    )


def best_span_f1(preds: Mapping[str, str], golds: Mapping[str, Sequence[str]]) -> float | None:
    """SQuAD F1 (%) of the best spans ``preds`` of the answerable examples in ``golds`` (those with a gold answer).

    The no-answer option plays no part: it scores where the model would point, whatever its threshold.
    None when no example is answerable.
    """
    answerable = {i: g for i, g in golds.items() if g}
    return squad_v2_scores(preds, answerable).has_ans_f1 if answerable else None


def best_threshold(preds: Mapping[str, str], golds: Mapping[str, Sequence[str]], na_probs: Mapping[str, float]) -> float:
    """The no-answer threshold that maximises SQuAD 2.0 F1 on these examples, to store with the run and reuse on test.

    Applying it (``squad_v2_scores(..., threshold=best_threshold(...))``) gives the highest F1 any
    threshold gives on this data; among equally good thresholds the lowest is returned. It is the
    official ``best_f1_thresh`` whenever that one is exact; it differs where the official sweep is
    not: where predicting "no answer" everywhere is best (the official sweep then reports 0.0, which
    may answer examples; here it is 1 below the lowest na_prob), and where examples share an
    na_prob (a threshold cannot separate them, so they are answered or not together).
    """
    _checked_na_probs(na_probs, golds)
    if not golds:
        return 0.0
    _, f1_raw = _v2_raw_scores(preds, golds)
    ids = sorted(golds, key=lambda i: na_probs[i])
    # Answering an example instead of predicting no answer changes its score by this much.
    gain = [f1_raw[i] - float(not golds[i]) for i in ids]
    values = [float(na_probs[i]) for i in ids]
    threshold = values[0] - 1.0
    score = best = 0.0
    for k, value in enumerate(values):
        score += gain[k]
        # A threshold sits between distinct values only: all examples sharing an na_prob go together.
        if (k + 1 == len(values) or values[k + 1] != value) and score > best:
            best, threshold = score, value
    return threshold


# --- Symptom detection: does the post hold evidence for the symptom? --------------------------------------


@attrs.frozen
class DetectionScores:
    """Post-level symptom detection: per symptom, and micro and macro averages (fractions in 0..1).

    Micro figures pool every (post, symptom) decision; macro figures are the unweighted mean of
    the per-symptom figures over every symptom in ``per_symptom`` (all nine DSM-5 symptoms by
    default, whether or not the split holds one), as a multi-label classification report gives them.
    """

    per_symptom: tuple[SymptomRow, ...]
    micro_precision: float
    micro_recall: float
    micro_f1: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    n: int
    """Decisions scored (examples whose symptom is one of the labels)."""

    def of(self, symptom: str) -> SymptomRow:
        """The figures of one symptom."""
        for row in self.per_symptom:
            if row.symptom == symptom:
                return row
        raise KeyError(f"no detection figures for symptom {symptom!r}")


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _harmonic(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def detection_scores(
    symptoms: Sequence[str], gold: Sequence[bool], predicted: Sequence[bool], labels: Sequence[str] = SYMPTOMS
) -> DetectionScores:
    """Precision, recall and F1 of "this post holds evidence for this symptom" decisions, per symptom, micro and macro.

    Row ``k`` is one (post, symptom) example: its symptom, whether its gold has an answer, and
    whether it was decided present. Rows whose symptom is not in ``labels`` are left out. A ratio
    with nothing to divide by is 0 (so a symptom never present and never predicted scores 0, and
    pulls the macro average down: the macro figures are over all ``labels``, as scikit-learn's
    ``classification_report`` gives them for a fixed label list).
    """
    if not len(symptoms) == len(gold) == len(predicted):
        raise ValueError(f"symptoms, gold and predicted differ in length: {len(symptoms)}, {len(gold)}, {len(predicted)}")
    wanted = set(labels)
    counts = {label: [0, 0, 0] for label in labels}  # support, predicted, true positives
    for symptom, is_gold, is_predicted in zip(symptoms, gold, predicted):
        if symptom not in wanted:
            continue
        row = counts[symptom]
        row[0] += bool(is_gold)
        row[1] += bool(is_predicted)
        row[2] += bool(is_gold) and bool(is_predicted)
    per_symptom = []
    for label in labels:
        support, n_predicted, hits = counts[label]
        precision, recall = _ratio(hits, n_predicted), _ratio(hits, support)
        per_symptom.append(SymptomRow(label, precision, recall, _harmonic(precision, recall), support, n_predicted, hits))
    support = sum(row.support for row in per_symptom)
    n_predicted = sum(row.predicted for row in per_symptom)
    hits = sum(row.true_positives for row in per_symptom)
    micro_p, micro_r = _ratio(hits, n_predicted), _ratio(hits, support)
    n_labels = len(per_symptom)
    return DetectionScores(
        per_symptom=tuple(per_symptom),
        micro_precision=micro_p,
        micro_recall=micro_r,
        micro_f1=_harmonic(micro_p, micro_r),
        macro_precision=sum(row.precision for row in per_symptom) / n_labels if n_labels else 0.0,
        macro_recall=sum(row.recall for row in per_symptom) / n_labels if n_labels else 0.0,
        macro_f1=sum(row.f1 for row in per_symptom) / n_labels if n_labels else 0.0,
        n=sum(1 for symptom in symptoms if symptom in wanted),
    )


# --- Evidence: do the predicted spans find the gold sentences? --------------------------------------------


@attrs.frozen
class EvidenceScores:
    """Predicted evidence spans against gold evidence sentences: precision, recall, F1 (fractions) and counts."""

    precision: float
    recall: float
    f1: float
    predicted: int
    """Predicted spans."""
    correct: int
    """Predicted spans that overlap some gold span."""
    gold: int
    """Gold spans."""
    found: int
    """Gold spans overlapped by some predicted span (each counted once)."""


def spans_meet(context: str, a: tuple[int, int], b: tuple[int, int]) -> bool:
    """True when character spans ``a`` and ``b`` of ``context`` share at least one non-whitespace character."""
    start, end = max(a[0], b[0]), min(a[1], b[1])
    return start < end and not context[start:end].isspace()


def evidence_scores(
    contexts: Mapping[str, str],
    predicted: Mapping[str, Sequence[tuple[int, int]]],
    gold: Mapping[str, Sequence[tuple[int, int]]],
) -> EvidenceScores:
    """Precision, recall and F1 of predicted evidence spans against gold sentences, pooled over the examples in ``gold``.

    A predicted span finds a gold span when the two share at least one non-whitespace character of
    the context (``spans_meet``). Precision = predicted spans that find some gold span / predicted
    spans; recall = gold spans found by some predicted span / gold spans (a gold span found twice
    counts once). Predicted spans of a no-answer example are all wrong. With no predicted spans
    precision is 1 (nothing claimed, nothing wrong); with no gold spans recall is 1 (nothing to
    find); so predicting exactly the gold spans always scores 1 / 1. Examples missing from
    ``predicted`` predict nothing.
    """
    n_predicted = correct = n_gold = found = 0
    for example_id, gold_spans in gold.items():
        context = contexts[example_id]
        spans = predicted.get(example_id, ())
        n_predicted += len(spans)
        n_gold += len(gold_spans)
        correct += sum(1 for p in spans if any(spans_meet(context, p, g) for g in gold_spans))
        found += sum(1 for g in gold_spans if any(spans_meet(context, p, g) for p in spans))
    precision = correct / n_predicted if n_predicted else 1.0
    recall = found / n_gold if n_gold else 1.0
    return EvidenceScores(precision, recall, _harmonic(precision, recall), n_predicted, correct, n_gold, found)


# --- Decisions as evtrain reports them ---------------------------------------------------------------------


class DecisionLike(Protocol):
    """What the scorers need of a decision (``evfeatures.decode.Decision`` has it): presence and ``(text, start, end, score)`` spans."""

    @property
    def example_id(self) -> str: ...

    @property
    def present(self) -> bool: ...

    @property
    def spans(self) -> tuple[tuple[str, int, int, float], ...]: ...


@attrs.frozen
class DecisionScores:
    """Every figure of a set of presence decisions: SQuAD 2.0 on the top span, symptom detection, and evidence spans."""

    squad: SquadV2Scores
    detection: DetectionScores
    evidence: EvidenceScores
    excluded: int
    """Examples left out because their evidence could not be located (``QAExample.answer_unknown``)."""


def decision_scores(examples: Sequence[QAExample], decisions: Iterable[DecisionLike], labels: Sequence[str] = SYMPTOMS) -> DecisionScores:
    """Score presence decisions (the model's after ``decide``, or a baseline's) on ``examples``.

    The SQuAD 2.0 figures take the top span's text of a present example and ``""`` for an absent
    one (the threshold is already applied, so no ``best_*``); detection compares ``present`` with
    whether the example has gold answers; evidence compares all reported spans with the gold
    spans. Examples with ``answer_unknown`` (located no evidence, yet the annotator found some)
    are neither positives nor negatives and are left out; an example without a decision is absent.
    """
    by_id = {d.example_id: d for d in decisions}
    kept = [e for e in examples if not e.answer_unknown]
    present = {e.id: bool(by_id[e.id].present) if e.id in by_id else False for e in kept}
    spans = {e.id: tuple(by_id[e.id].spans) if present[e.id] else () for e in kept}
    squad = squad_v2_scores(
        {e.id: spans[e.id][0][0] if spans[e.id] else "" for e in kept}, {e.id: [a.text for a in e.answers] for e in kept}
    )
    detection = detection_scores([e.symptom for e in kept], [e.has_answer for e in kept], [present[e.id] for e in kept], labels)
    evidence = evidence_scores(
        {e.id: e.context for e in kept},
        {e.id: [(s, t) for _, s, t, _ in spans[e.id]] for e in kept},
        {e.id: [(a.start, a.end) for a in e.answers] for e in kept},
    )
    return DecisionScores(squad, detection, evidence, len(examples) - len(kept))
