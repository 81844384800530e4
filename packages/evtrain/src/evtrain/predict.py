"""Evidence spans for new posts with a trained run."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from evdata.atomic import atomic_write_text
from evdata.readers import DataError, read_posts
from evdata.records import SYMPTOMS, Post, QAExample, symptom_question
from evfeatures.decode import decide, decode
from evfeatures.settings import FeatureSettings
from evfeatures.windows import build_windows
from evmodel.loading import pad_token_id
from evtrain.evaluation import inference_model, window_logits
from evtrain.precision import PrecisionPlan
from evtrain.records import PostPrediction, SpanRecord

POSTS_PER_CHUNK = 32  # posts tokenised and scored together; bounds memory on large inputs


def read_input_posts(path: str | Path) -> list[Post]:
    """Posts from a CSV/JSONL file with post_id,text, or a plain-text file taken as one post.

    Posts with no text are kept (their records say so); a file with no post at all is a ``DataError``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, 0, "", "input file not found")
    if not path.is_file():
        raise DataError(path, 0, "", "is not a file; pass a CSV/JSONL file with post_id,text or a plain-text file")
    if path.suffix.lower() in (".csv", ".jsonl", ".ndjson"):
        posts, _ = read_posts(path, keep_empty=True)
        empty = [p for p in posts if not p.text.strip()]
        if empty:
            lines = ", ".join(str(p.line) for p in empty[:10]) + (" ..." if len(empty) > 10 else "")
            print(f"{path}: {len(empty)} post(s) with no text (line {lines}); their records carry the note 'empty post'")
        return list(posts)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(path, line, f"byte {column}", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8") from None
    if not text.strip():
        raise DataError(path, 1, "", "the file holds no text to analyse (a plain-text input is one post)")
    return [Post(post_id=path.stem, text=text, line=1)]


def questions_for(post: Post, question_mode: str) -> list[QAExample]:
    """The examples asked of a new post: one empty question, or one per DSM-5 symptom."""
    if question_mode == "empty":
        return [QAExample(id=post.post_id, post_id=post.post_id, question="", context=post.text, answers=())]
    return [
        QAExample(id=f"{post.post_id}::{s}", post_id=post.post_id, question=symptom_question(s), context=post.text, answers=(), symptom=s)
        for s in SYMPTOMS
    ]


def _chunks(items: Sequence[Post], size: int) -> Iterator[Sequence[Post]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def predict_posts(
    model,
    tokenizer,
    posts: Sequence[Post],
    *,
    question_mode: str,
    features: FeatureSettings,
    batch_size: int,
    device,
    precision: PrecisionPlan,
    threshold: float = 0.0,
    nbest: int = 3,
    show_progress: bool = True,
) -> list[PostPrediction]:
    """One record per post (per post and symptom in ``symptom`` mode): the no-answer decision at ``threshold``,
    every evidence span clearing it (at most ``features.max_spans``), the best span, null score, margin, n-best."""
    from tqdm.auto import tqdm

    model, precision = inference_model(model, precision)
    records: list[PostPrediction] = []
    pad_id = pad_token_id(tokenizer)
    with tqdm(total=len(posts), desc="predict", unit="post", disable=not show_progress) as bar:
        for chunk in _chunks(posts, POSTS_PER_CHUNK):
            examples = [ex for post in chunk if post.text.strip() for ex in questions_for(post, question_mode)]
            chunk_records: list[PostPrediction] = []
            for post in chunk:
                if not post.text.strip():
                    chunk_records.append(PostPrediction(post.post_id, "", "", "", 0, 0, None, 0, [], note="empty post"))
            if examples:
                windows = build_windows(examples, tokenizer, features)
                start, end = window_logits(model, windows, batch_size=batch_size, pad_token_id=pad_id, device=device, precision=precision)
                counts = np.bincount(windows.example_index, minlength=len(examples))
                decoded = decode(examples, windows, start, end, features, nbest=nbest, max_spans=features.max_spans)
                for i, (ex, p) in enumerate(zip(examples, decoded)):
                    d = decide(p, threshold, features.max_spans)
                    chunk_records.append(
                        PostPrediction(
                            post_id=ex.post_id,
                            symptom=ex.symptom,
                            question=ex.question,
                            prediction_text=p.text,
                            start=p.start,
                            end=p.end,
                            score=p.score if abs(p.score) != float("inf") else None,
                            windows=int(counts[i]),
                            nbest=[SpanRecord(t, s, e, sc) for t, s, e, sc in p.nbest],
                            present=d.present,
                            null_score=_finite(p.null_score),
                            margin=_finite(d.margin),
                            spans=[SpanRecord(t, s, e, float(sc)) for t, s, e, sc in d.spans],
                        )
                    )
            # Records in input order, empty posts included (a stable sort keeps the symptom order).
            position = {post.post_id: i for i, post in enumerate(chunk)}
            records.extend(sorted(chunk_records, key=lambda r: position[r.post_id]))
            bar.update(len(chunk))
    return records


def _finite(x: float) -> float | None:
    return float(x) if x == x and abs(x) != float("inf") else None


CSV_COLUMNS = ("post_id", "symptom", "present", "start", "end", "text", "score")


def prediction_rows(records: Sequence[PostPrediction]) -> list[dict[str, object]]:
    """The flat table of ``invoke predict --output x.csv``: one row per evidence span; an absent (post, symptom) one empty row."""
    rows: list[dict[str, object]] = []
    for r in records:
        if r.present and r.spans:
            rows.extend(
                {
                    "post_id": r.post_id,
                    "symptom": r.symptom,
                    "present": True,
                    "start": s.start,
                    "end": s.end,
                    "text": s.text,
                    "score": round(s.score, 4),
                }
                for s in r.spans
            )
        else:
            rows.append({"post_id": r.post_id, "symptom": r.symptom, "present": False, "start": "", "end": "", "text": "", "score": ""})
    return rows


def write_prediction_csv(path: str | Path, records: Sequence[PostPrediction]) -> Path:
    """Write the flat prediction table (``CSV_COLUMNS``) as UTF-8 CSV, atomically."""
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(prediction_rows(records))
    return atomic_write_text(path, buffer.getvalue())


def prediction_table(records: Sequence[PostPrediction], n_posts: int, question_mode: str, threshold: float):
    """A rich table: per post and symptom decided present, its margin and evidence; a post with none says so."""
    from rich.table import Table

    table = Table(title=f"predictions ({n_posts} posts, {question_mode} mode, no-answer threshold {threshold:.2f})")
    for col in ("post_id", "symptom", "present", "margin", "evidence"):
        table.add_column(col)
    by_post: dict[str, list[PostPrediction]] = {}
    for r in records:
        by_post.setdefault(r.post_id, []).append(r)
    for post_id, items in by_post.items():
        found = [r for r in items if r.present]
        if not found:
            note = next((r.note for r in items if r.note), "")
            table.add_row(post_id, "-", "no", "-", note or "no evidence for any symptom")
            continue
        for r in found:
            text = " | ".join(s.text.replace("\n", " ") for s in r.spans)
            table.add_row(
                post_id,
                r.symptom or "-",
                "yes",
                f"{r.margin:.2f}" if r.margin is not None else "-",
                text[:100] + ("…" if len(text) > 100 else ""),
            )
    return table
