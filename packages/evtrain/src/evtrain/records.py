"""A run's typed contract: everything a run writes that other code reads back.

Each class is an ``attrs`` value written and read through the one cattrs converter
(``evdata.config.write_record`` / ``read_record``), so the files stay plain JSON (for people and
``jq``) while every reader (evaluate, report, bench, evsearch) works with fields, never raw keys.
A file that does not match its class is a ``RecordError`` naming the file and the field.

| file | class |
|---|---|
| ``metrics.json`` | ``RunMetrics`` (history rows, best, scores per split, baselines) |
| ``metrics_<split>.json`` | ``SplitEvaluation`` |
| ``predictions/<split>.json`` | ``list[PredictionRecord]`` |
| ``predictions/<input>.predict.json`` | ``list[PostPrediction]`` |
| ``state/*/state.json`` (progress part) | ``Progress`` |

Hooks called after each validation (evsearch's pruner) receive an ``EvaluationReport``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs

from evdata.config import converter, read_record, write_record

PrecisionName = Literal["fp32", "bf16", "fp16"]


@attrs.frozen
class SymptomRow:
    """Post-level detection of one symptom ("does the post hold evidence for it?"): precision, recall, F1 and counts.

    ``evtrain.metrics.detection_scores`` gives the rates as fractions (0..1); ``Scores.per_symptom`` holds them
    as percentages, like every other figure of ``Scores``.
    """

    symptom: str
    precision: float
    recall: float
    f1: float
    support: int
    """Examples whose gold holds evidence."""
    predicted: int
    """Examples decided present."""
    true_positives: int


@attrs.frozen
class Scores:
    """Figures of one split at one no-answer threshold, percentages over ``n`` examples.

    ``exact_match`` / ``f1`` are SQuAD 2.0's overall figures (an example decided absent predicts ``""``,
    right when it has no gold evidence); ``has_ans_*`` / ``no_ans_*`` split them by gold; ``best_f1`` and
    ``best_f1_thresh`` are the official script's threshold sweep on this split; ``threshold`` is the one applied.
    ``symptom_*`` are post-level symptom detection (micro / macro over the nine DSM-5 symptoms), ``evidence_*``
    every reported span against the gold evidence sentences. Examples whose evidence could not be located are
    left out (``excluded``). Files written before no-answer decoding carry only the first three.
    """

    exact_match: float
    f1: float
    n: int
    has_ans_exact: float = 0.0
    has_ans_f1: float = 0.0
    has_ans_total: int = 0
    no_ans_exact: float = 0.0
    """NoAns accuracy: share of no-evidence examples decided absent."""
    no_ans_total: int = 0
    best_f1: float | None = None
    best_f1_thresh: float | None = None
    threshold: float | None = None
    symptom_micro_f1: float = 0.0
    symptom_macro_precision: float = 0.0
    symptom_macro_recall: float = 0.0
    symptom_macro_f1: float = 0.0
    evidence_precision: float = 0.0
    evidence_recall: float = 0.0
    evidence_f1: float = 0.0
    excluded: int = 0
    per_symptom: list[SymptomRow] = attrs.field(factory=list)

    def value(self, metric: str) -> float:
        """The figure named by ``train.metric`` (``f1``, ``exact_match`` or ``symptom_macro_f1``)."""
        return float(getattr(self, metric))


@attrs.frozen
class HistoryRow:
    """One validation of a run: where training stood and what validation scored."""

    epoch: int
    step: int
    train_loss: float
    """Mean training loss since the previous validation."""
    val_f1: float
    val_exact_match: float
    train_seconds: float
    """Training time since the previous validation (validation excluded)."""
    eval_seconds: float
    train_tokens_per_second: float
    """Real (non-padding) tokens trained per second since the previous validation."""
    val_threshold: float | None = None
    """The no-answer threshold validation scored at (tuned on it, unless ``features.null_threshold`` fixes one)."""
    val_symptom_macro_f1: float = 0.0


@attrs.frozen
class Best:
    """The best validation of a run: its checkpoint is the run's ``model/``."""

    metric: str
    value: float
    epoch: int
    step: int


@attrs.frozen
class RunMetrics:
    """``metrics.json``: how a finished run trained and what its best checkpoint scores."""

    run: str
    model: str
    question_mode: str
    synthetic_data: bool
    device: str
    precision: str
    """Human label of the precision plan, e.g. ``bf16 autocast``."""
    precision_dtype: PrecisionName
    """The compute dtype of training: ``fp32``, ``bf16`` or ``fp16`` (what tools compare against a peak)."""
    threads: int
    examples: dict[str, int]
    windows: dict[str, int]
    history: list[HistoryRow]
    best: Best
    stopped_early: bool
    optimizer_steps: int
    train_tokens_per_second: float
    val: Scores | None
    test: Scores | None
    baselines: dict[str, dict[str, Scores]]
    wall_seconds: float
    null_threshold: float | None = None
    """The no-answer threshold of this run: tuned on validation with the best checkpoint (or the setting); test,
    ``invoke evaluate``, ``predict``, ``report`` and the search use it."""
    threshold_source: str = ""
    """``tuned on val`` or ``features.null_threshold``."""

    def split(self, name: str) -> Scores | None:
        """The best checkpoint's scores on ``val`` or ``test`` (None when not evaluated)."""
        return {"val": self.val, "test": self.test}.get(name)

    @property
    def best_value(self) -> float:
        return self.best.value


@attrs.frozen
class SplitEvaluation:
    """``metrics_<split>.json``: one evaluation of a saved checkpoint on one split.

    On disk the scores sit at the top level beside ``split``, ``seconds`` and ``windows``
    (``jq .f1 metrics_test.json``), as they always have.
    """

    split: str
    scores: Scores
    seconds: float
    windows: int


_OWN = ("split", "seconds", "windows")


def _flat_evaluation(value: SplitEvaluation) -> dict[str, Any]:
    return {"split": value.split, **converter.unstructure(value.scores), "seconds": value.seconds, "windows": value.windows}


def _nested_evaluation(data: Any, _: type) -> SplitEvaluation:
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    missing = [key for key in _OWN if key not in data]
    if missing:
        raise ValueError(f"missing field(s): {', '.join(missing)}")
    scores = converter.structure({k: v for k, v in data.items() if k not in _OWN}, Scores)
    return SplitEvaluation(str(data["split"]), scores, float(data["seconds"]), int(data["windows"]))


converter.register_unstructure_hook(SplitEvaluation, _flat_evaluation)
converter.register_structure_hook(SplitEvaluation, _nested_evaluation)


@attrs.frozen
class SpanRecord:
    """A candidate span of a post: ``text == post[start:end]``."""

    text: str
    start: int
    end: int
    score: float


@attrs.frozen
class PredictionRecord:
    """One example of ``predictions/<split>.json``: the prediction against its gold answers."""

    example_id: str
    post_id: str
    question: str
    symptom: str
    prediction_text: str
    start: int
    end: int
    score: float | None
    """Start + end logit of the span; None when no window held a valid span."""
    gold_texts: list[str]
    gold_spans: list[tuple[int, int]]
    exact_match: float
    f1: float
    present: bool = True
    """The no-answer decision: evidence found (``prediction_text`` is the best span), else ``prediction_text == ""``."""
    null_score: float | None = None
    margin: float | None = None
    """Best span score - null score (present when ``margin >= -threshold``)."""
    spans: list[SpanRecord] = attrs.field(factory=list)
    """Every non-overlapping span that clears the threshold, best first (empty when absent)."""


@attrs.frozen
class PostPrediction:
    """One record of ``invoke predict``: a post (and symptom, in ``symptom`` mode) and its evidence."""

    post_id: str
    symptom: str
    question: str
    prediction_text: str
    start: int
    end: int
    score: float | None
    windows: int
    nbest: list[SpanRecord]
    note: str = ""
    present: bool = False
    """The no-answer decision at the run's threshold."""
    null_score: float | None = None
    margin: float | None = None
    """Best span score - null score; the example is present when ``margin >= -threshold``."""
    spans: list[SpanRecord] = attrs.field(factory=list)
    """The evidence spans clearing the threshold, best first (empty when absent)."""


@attrs.define
class Progress:
    """Where a training run stands; saved in every resumable state and restored on resume.

    Mutable on purpose: the loop advances one object. Everything else sees frozen records.
    """

    epoch: int = 0
    """0-based epoch being trained."""
    batch_in_epoch: int = 0
    """Micro-batches of this epoch already trained."""
    global_step: int = 0
    best: Best | None = None
    bad_evals: int = 0
    history: list[HistoryRow] = attrs.field(factory=list)
    stopped_early: bool = False
    loss_sum: float = 0.0
    loss_count: int = 0
    tokens: int = 0
    train_seconds: float = 0.0

    def take_window(self) -> tuple[float, float, float]:
        """Mean loss, tokens/s and seconds since the last validation; resets the window."""
        loss = self.loss_sum / max(1, self.loss_count)
        rate = self.tokens / max(1e-9, self.train_seconds)
        seconds = self.train_seconds
        self.loss_sum, self.loss_count, self.tokens, self.train_seconds = 0.0, 0, 0, 0.0
        return loss, rate, seconds


@attrs.frozen
class EvaluationReport:
    """What a hook learns after each validation (evsearch reports it to the Optuna pruner)."""

    index: int
    """1-based count of validations in this run."""
    epoch: int
    """1-based epoch the validation happened in."""
    step: int
    scores: Scores
    value: float
    """The ``train.metric`` figure of ``scores``."""
    improved: bool
    last: bool
    """No further validation will follow in this run (last epoch, step cap, or early stop)."""


def write_metrics(path: str | Path, metrics: RunMetrics) -> Path:
    """Write ``metrics.json``."""
    return write_record(path, metrics)


def read_metrics(path: str | Path) -> RunMetrics:
    """Read ``metrics.json`` (``RecordError`` naming the file and field when it does not match)."""
    return read_record(path, RunMetrics)


def read_split_evaluation(path: str | Path) -> SplitEvaluation:
    """Read ``metrics_<split>.json``."""
    return read_record(path, SplitEvaluation)


def read_predictions(path: str | Path) -> list[PredictionRecord]:
    """Read ``predictions/<split>.json``."""
    return read_record(path, list[PredictionRecord])
