"""What a run report reads: the run's metrics, its predictions for one split, and the corpus posts.

Everything is checked on the way in: a prediction whose offsets do not cut its own text out of the
post is an error naming the file, the record and the field, because a highlight drawn at the wrong
place would be worse than no report.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from evdata.readers import read_corpus
from evdata.records import Corpus
from evtrain.runs import RunError, RunPaths
from evtrain.settings import RunSettings


class ReportError(RunError):
    """Input a report cannot be built from, naming the file and what to do about it."""


@attrs.frozen
class ExampleRecord:
    """One record of ``predictions/<split>.json``: an example, its predicted span and its gold spans."""

    example_id: str
    post_id: str
    question: str
    symptom: str
    prediction_text: str
    start: int
    end: int
    score: float | None
    gold_texts: tuple[str, ...]
    gold_spans: tuple[tuple[int, int], ...]
    exact_match: float
    f1: float

    @property
    def predicted(self) -> bool:
        """Whether the model put forward a non-empty span."""
        return self.end > self.start

    @classmethod
    def from_json(cls, raw: Any, where: str) -> ExampleRecord:
        """Build from one decoded JSON object; ``where`` (file and record) prefixes every error."""
        if not isinstance(raw, dict):
            raise ReportError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        missing = [
            key for key in ("example_id", "post_id", "prediction_text", "start", "end", "gold_texts", "gold_spans") if key not in raw
        ]
        if missing:
            raise ReportError(f"{where}: missing field(s) {', '.join(missing)}")
        gold_texts = _list_of(raw["gold_texts"], str, where, "gold_texts")
        gold_spans = tuple(
            _span(span, where, f"gold_spans[{i}]") for i, span in enumerate(_list_of(raw["gold_spans"], list, where, "gold_spans"))
        )
        if len(gold_texts) != len(gold_spans):
            raise ReportError(f"{where}: gold_texts has {len(gold_texts)} entries but gold_spans has {len(gold_spans)}")
        start, end = _span([raw["start"], raw["end"]], where, "start/end")
        return cls(
            example_id=_typed(raw["example_id"], str, where, "example_id"),
            post_id=_typed(raw["post_id"], str, where, "post_id"),
            question=_typed(raw.get("question", ""), str, where, "question"),
            symptom=_typed(raw.get("symptom") or "", str, where, "symptom"),
            prediction_text=_typed(raw["prediction_text"], str, where, "prediction_text"),
            start=start,
            end=end,
            score=_optional_number(raw.get("score"), where, "score"),
            gold_texts=tuple(gold_texts),
            gold_spans=gold_spans,
            exact_match=_number(raw.get("exact_match", 0.0), where, "exact_match"),
            f1=_number(raw.get("f1", 0.0), where, "f1"),
        )


def _typed(value: Any, kind: type, where: str, field: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ReportError(f"{where}: field {field!r} must be {kind.__name__}, got {value!r}")
    return value


def _list_of(value: Any, kind: type, where: str, field: str) -> list:
    if not isinstance(value, list):
        raise ReportError(f"{where}: field {field!r} must be a list, got {value!r}")
    for i, item in enumerate(value):
        _typed(item, kind, where, f"{field}[{i}]")
    return value


def _span(value: list, where: str, field: str) -> tuple[int, int]:
    if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ReportError(f"{where}: field {field!r} must be two integers, got {value!r}")
    start, end = value
    if not 0 <= start <= end:
        raise ReportError(f"{where}: field {field!r} must satisfy 0 <= start <= end, got [{start}, {end}]")
    return start, end


def _number(value: Any, where: str, field: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ReportError(f"{where}: field {field!r} must be a finite number, got {value!r}")
    return float(value)


def _optional_number(value: Any, where: str, field: str) -> float | None:
    return None if value is None else _number(value, where, field)


def read_json(path: Path) -> Any:
    """Parse a JSON file; a syntax error names the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ReportError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}, line {exc.lineno}, column {exc.colno}: invalid JSON ({exc.msg})") from None


def read_predictions(path: Path) -> tuple[ExampleRecord, ...]:
    """The records of a ``predictions/<split>.json`` file, validated one by one."""
    raw = read_json(path)
    if not isinstance(raw, list):
        raise ReportError(f"{path}: expected a JSON list of prediction records, got {type(raw).__name__}")
    records = tuple(ExampleRecord.from_json(item, f"{path}, record {i}") for i, item in enumerate(raw))
    seen: dict[str, int] = {}
    for i, record in enumerate(records):
        if record.example_id in seen:
            raise ReportError(f"{path}, record {i}: duplicate example_id {record.example_id!r} (first at record {seen[record.example_id]})")
        seen[record.example_id] = i
    return records


@attrs.frozen
class Explanation:
    """An annotator's rationale for one evidence sentence."""

    symptom: str
    sentence: str
    text: str


@attrs.frozen
class RunInputs:
    """Everything the run page shows, already checked against each other."""

    run_name: str
    split: str
    metrics: Mapping[str, Any]
    """metrics.json (empty when the run has none yet)."""
    split_metrics: Mapping[str, Any] | None
    """metrics_<split>.json, else ``metrics[split]``, else None."""
    records: tuple[ExampleRecord, ...]
    posts: Mapping[str, str]
    """post_id -> text, for the posts of the split."""
    explanations: Mapping[str, tuple[Explanation, ...]]
    """post_id -> the rationales of its evidence sentences (status 1 rows with an explanation)."""
    curves_png: bytes | None
    synthetic: bool
    predictions_path: str


def check_offsets(records: Sequence[ExampleRecord], posts: Mapping[str, str], path: Path) -> None:
    """Every predicted and gold span must cut exactly its recorded text out of its post."""
    for i, r in enumerate(records):
        where = f"{path}, record {i} (example {r.example_id!r})"
        text = posts.get(r.post_id)
        if text is None:
            raise ReportError(f"{where}: post {r.post_id!r} is not in the corpus; pass --data-dir with the corpus the run was evaluated on")
        spans = [("start/end", r.start, r.end, r.prediction_text)]
        spans += [(f"gold_spans[{k}]", s, e, g) for k, ((s, e), g) in enumerate(zip(r.gold_spans, r.gold_texts))]
        for field, s, e, expected in spans:
            if e > len(text) or text[s:e] != expected:
                raise ReportError(
                    f"{where}: field {field!r} = [{s}, {e}) does not cut its text out of post {r.post_id!r} "
                    f"({len(text)} characters); the corpus changed since the run was evaluated, pass --data-dir with the one it used"
                )


def explanations_by_post(corpus: Corpus, post_ids: set[str]) -> dict[str, tuple[Explanation, ...]]:
    """The annotators' rationales of the evidence rows (status 1) of ``post_ids``, in file order."""
    found: dict[str, list[Explanation]] = defaultdict(list)
    for a in corpus.annotations:
        if a.post_id in post_ids and a.status == 1 and a.explanation.strip():
            found[a.post_id].append(Explanation(a.symptom, a.sentence_text, a.explanation.strip()))
    return {post_id: tuple(items) for post_id, items in found.items()}


def load_run_inputs(run: RunPaths, split: str, data_dir: str | None = None) -> RunInputs:
    """Read a run directory's metrics and ``predictions/<split>.json`` and the posts they refer to.

    The corpus is read with the run's own ``[data]`` settings (or from ``data_dir``); no alignment
    is needed, since the predictions carry their gold spans.
    """
    predictions_path = run.split_predictions(split)
    if not predictions_path.is_file():
        available = (
            sorted(p.stem for p in run.predictions.glob("*.json") if not p.stem.endswith(".predict")) if run.predictions.is_dir() else []
        )
        hint = f" (available: {', '.join(available)})" if available else ""
        raise ReportError(
            f"{predictions_path}: no predictions for split {split!r}{hint}; run `invoke evaluate --run {run.root} --split {split}` first"
        )
    records = read_predictions(predictions_path)
    metrics = read_json(run.metrics) if run.metrics.is_file() else {}
    if not isinstance(metrics, dict):
        raise ReportError(f"{run.metrics}: expected a JSON object")
    split_metrics = read_json(run.split_metrics(split)) if run.split_metrics(split).is_file() else metrics.get(split)
    if split_metrics is not None and not isinstance(split_metrics, dict):
        raise ReportError(f"{run.split_metrics(split)}: expected a JSON object")
    settings = RunSettings.load(run.settings)
    data = settings.data
    if data_dir:
        data = attrs.evolve(data, data_dir=str(data_dir), posts_file="", annotations_file="")
    corpus = read_corpus(data)
    wanted = {r.post_id for r in records}
    posts = {p.post_id: p.text for p in corpus.posts if p.post_id in wanted}
    check_offsets(records, posts, predictions_path)
    return RunInputs(
        run_name=str(metrics.get("run") or run.root.resolve().name),
        split=split,
        metrics=metrics,
        split_metrics=split_metrics,
        records=records,
        posts=posts,
        explanations=explanations_by_post(corpus, wanted),
        curves_png=run.curves.read_bytes() if run.curves.is_file() else None,
        synthetic=bool(corpus.synthetic or metrics.get("synthetic_data")),
        predictions_path=str(predictions_path),
    )
