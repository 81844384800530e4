"""What a run report reads: the run's metrics, its predictions for one split, and the corpus posts.

Each file is read into its class of ``evtrain.records`` (``RunMetrics``, ``SplitEvaluation``,
``list[PredictionRecord]``) through the one converter, as ``read_metrics`` and its siblings do, with
the report's own messages for a file that is not JSON, or not a list/object at its top level.
Everything is checked on the way in: a prediction whose offsets do not cut its own text out of the
post is an error naming the file, the record and the field, because a highlight drawn at the wrong
place would be worse than no report.
"""

from __future__ import annotations

import json
import math
import typing
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from evdata.config import RecordError, from_data
from evdata.readers import read_corpus
from evdata.records import Corpus
from evtrain.records import PredictionRecord, RunMetrics, Scores, SplitEvaluation
from evtrain.runs import RunError, RunPaths
from evtrain.settings import RunSettings


class ReportError(RunError):
    """Input a report cannot be built from, naming the file and what to do about it."""


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


def read_typed(path: Path, cls: Any) -> Any:
    """A record file read into ``cls`` (a class of ``evtrain.records``, or ``list[...]`` of one) through the one converter.

    The JSON is parsed here so a syntax error names line and column, and a top level of the wrong
    kind (an object for a list, or the reverse) is named as such; the converter then names the file
    and each field that does not match.
    """
    raw = read_json(path)
    want = list if typing.get_origin(cls) is list else dict
    if not isinstance(raw, want):
        raise ReportError(f"{path}: expected a JSON {'list' if want is list else 'object'}, got {type(raw).__name__}")
    try:
        return from_data(raw, cls, str(path))
    except RecordError as exc:
        raise ReportError(str(exc)) from None


def _span_problem(span: tuple[int, int]) -> str | None:
    start, end = span
    return None if 0 <= start <= end else f"must satisfy 0 <= start <= end, got [{start}, {end}]"


def check_records(records: Sequence[PredictionRecord], path: Path) -> None:
    """What the converter cannot check: spans in order, as many gold texts as spans, finite figures, unique ids."""
    seen: dict[str, int] = {}
    for i, r in enumerate(records):
        where = f"{path}, record {i}"
        spans = [("start/end", (r.start, r.end))] + [(f"gold_spans[{k}]", span) for k, span in enumerate(r.gold_spans)]
        for field, span in spans:
            problem = _span_problem(span)
            if problem:
                raise ReportError(f"{where}: field {field!r} {problem}")
        if len(r.gold_texts) != len(r.gold_spans):
            raise ReportError(f"{where}: gold_texts has {len(r.gold_texts)} entries but gold_spans has {len(r.gold_spans)}")
        for field, value in (("score", r.score), ("exact_match", r.exact_match), ("f1", r.f1)):
            if value is not None and not math.isfinite(value):
                raise ReportError(f"{where}: field {field!r} must be a finite number, got {value!r}")
        if r.example_id in seen:
            raise ReportError(f"{where}: duplicate example_id {r.example_id!r} (first at record {seen[r.example_id]})")
        seen[r.example_id] = i


def load_predictions(path: Path) -> list[PredictionRecord]:
    """The records of a ``predictions/<split>.json`` file, read through ``PredictionRecord`` and checked."""
    records: list[PredictionRecord] = read_typed(path, list[PredictionRecord])
    check_records(records, path)
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
    metrics: RunMetrics | None
    """metrics.json (None when the run has none yet)."""
    recorded: Scores | None
    """The split's scores as last recorded: metrics_<split>.json, else metrics.json's, else None."""
    records: tuple[PredictionRecord, ...]
    posts: Mapping[str, str]
    """post_id -> text, for the posts of the split."""
    explanations: Mapping[str, tuple[Explanation, ...]]
    """post_id -> the rationales of its evidence sentences (status 1 rows with an explanation)."""
    curves_png: bytes | None
    synthetic: bool
    predictions_path: str
    threshold_png: bytes | None = None
    """Validation F1 against the no-answer threshold (``threshold_f1.png``), when the run has one."""


def check_offsets(records: Sequence[PredictionRecord], posts: Mapping[str, str], path: Path) -> None:
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
    records = load_predictions(predictions_path)
    metrics: RunMetrics | None = read_typed(run.metrics, RunMetrics) if run.metrics.is_file() else None
    if run.split_metrics(split).is_file():
        recorded: Scores | None = read_typed(run.split_metrics(split), SplitEvaluation).scores
    else:
        recorded = metrics.split(split) if metrics else None
    settings = RunSettings.load(run.settings)
    data = settings.data
    if data_dir:
        data = attrs.evolve(data, data_dir=str(data_dir), posts_file="", annotations_file="")
    corpus = read_corpus(data)
    wanted = {r.post_id for r in records}
    posts = {p.post_id: p.text for p in corpus.posts if p.post_id in wanted}
    check_offsets(records, posts, predictions_path)
    return RunInputs(
        run_name=(metrics.run if metrics else "") or run.root.resolve().name,
        split=split,
        metrics=metrics,
        recorded=recorded,
        records=tuple(records),
        posts=posts,
        explanations=explanations_by_post(corpus, wanted),
        curves_png=run.curves.read_bytes() if run.curves.is_file() else None,
        threshold_png=run.threshold_plot.read_bytes() if run.threshold_plot.is_file() else None,
        synthetic=bool(corpus.synthetic or (metrics and metrics.synthetic_data)),
        predictions_path=str(predictions_path),
    )
