"""One call from settings to split QA examples, and the summary ``invoke data`` prints."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import attrs
from rich.console import Console
from rich.table import Table

from evdata.align import METHODS, AlignmentResult, SentenceSimilarity, align_corpus
from evdata.cache import alignment_key, load_alignment, save_alignment
from evdata.examples import build_examples, posts_without_evidence
from evdata.readers import read_corpus
from evdata.records import SYMPTOMS, Corpus, QAExample, Split
from evdata.settings import DataSettings
from evdata.split import SPLIT_NAMES, split_examples, split_post_ids


@attrs.frozen
class Dataset:
    """The corpus, how each annotation row aligned, the QA examples and their post-level split."""

    corpus: Corpus
    alignment: AlignmentResult
    examples: tuple[QAExample, ...]
    split: Split
    posts_without_evidence: int


def load_dataset(
    settings: DataSettings,
    similarity: SentenceSimilarity | None = None,
    *,
    cache_dir: str | Path | None = None,
    show_progress: bool = False,
) -> Dataset:
    """Read, align, build examples and split, as ``settings`` say (``similarity`` enables the semantic step).

    Posts with evidence and posts without are split separately with the same ratios, so every
    split gets its share of both and every post lands in exactly one split. With ``cache_dir`` the
    alignment result is reused when files, thresholds and scorer are unchanged. ``show_progress``
    shows a progress bar on stderr while rows are aligned (not when the cache answers).
    """
    corpus = read_corpus(settings)
    alignment = _aligned(corpus, settings, similarity, cache_dir, show_progress)
    examples = build_examples(corpus, alignment, settings.question_mode, no_answer_examples=settings.no_answer_examples)
    # With no-answer examples built, a post can have examples but no evidence: split by evidence, not by examples.
    with_evidence = list(dict.fromkeys(example.post_id for example in examples if example.has_answer))
    has_evidence = set(with_evidence)
    without = [post.post_id for post in corpus.posts if post.post_id not in has_evidence]
    ratios = (settings.train_ratio, settings.val_ratio, settings.test_ratio)
    first = split_post_ids(with_evidence, *ratios, seed=settings.split_seed)
    second = split_post_ids(without, *ratios, seed=settings.split_seed)
    order = {post.post_id: i for i, post in enumerate(corpus.posts)}
    post_ids = {name: tuple(sorted(first[name] + second[name], key=order.__getitem__)) for name in SPLIT_NAMES}
    return Dataset(
        corpus=corpus,
        alignment=alignment,
        examples=examples,
        split=split_examples(examples, post_ids),
        posts_without_evidence=posts_without_evidence(corpus, examples),
    )


def _aligned(
    corpus: Corpus, settings: DataSettings, similarity: SentenceSimilarity | None, cache_dir: str | Path | None, show_progress: bool
) -> AlignmentResult:
    key = alignment_key(corpus, settings, similarity) if cache_dir else None
    path = Path(cache_dir) / f"alignment-{key}.json" if key else None
    cached = load_alignment(path, corpus) if path else None
    if cached is not None:
        return cached
    alignment = _align_with_progress(corpus, settings, similarity) if show_progress else align_corpus(corpus, settings, similarity)
    if path is not None:
        save_alignment(path, alignment)
    return alignment


def _align_with_progress(corpus: Corpus, settings: DataSettings, similarity: SentenceSimilarity | None) -> AlignmentResult:
    """``align_corpus`` under a progress bar counting annotated posts (removed when done)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    posts = len({annotation.post_id for annotation in corpus.annotations})
    columns = (TextColumn("aligning annotations"), BarColumn(), MofNCompleteColumn(), TextColumn("posts"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("align", total=posts)
        return align_corpus(corpus, settings, similarity, on_post=lambda: progress.advance(task))


def examples_by_split(dataset: Dataset, split_name: str) -> tuple[QAExample, ...]:
    """The examples of one split (``train``, ``val`` or ``test``)."""
    if split_name not in dataset.split.examples:
        raise KeyError(f"unknown split {split_name!r}; expected one of {', '.join(dataset.split.examples)}")
    return dataset.split.examples[split_name]


def summary_tables(dataset: Dataset) -> dict[str, list[dict[str, Any]]]:
    """Plain tables (lists of row dicts) describing a dataset.

    ``alignment``: annotation rows per method and status; ``splits``: posts, posts with evidence,
    examples and answers per split; ``symptoms``: rows per symptom and status; ``skips``: skipped
    rows per file and reason.
    """
    by_method = Counter((a.method, a.annotation.status) for a in dataset.alignment.alignments)
    alignment = [
        {
            "method": method,
            "status_1": by_method[(method, 1)],
            "status_0": by_method[(method, 0)],
            "total": by_method[(method, 1)] + by_method[(method, 0)],
        }
        for method in METHODS
    ]
    alignment.append(
        {
            "method": "all",
            "status_1": sum(row["status_1"] for row in alignment),
            "status_0": sum(row["status_0"] for row in alignment),
            "total": len(dataset.alignment.alignments),
        }
    )
    splits = []
    for name in SPLIT_NAMES:
        examples = dataset.split.examples.get(name, ())
        splits.append(
            {
                "split": name,
                "posts": len(dataset.split.post_ids.get(name, ())),
                "posts_with_evidence": len({e.post_id for e in examples if e.answers}),
                "examples": len(examples),
                "answers": sum(len(e.answers) for e in examples),
            }
        )
    by_symptom = Counter((a.symptom, a.status) for a in dataset.corpus.annotations)
    labels = sorted(
        {a.symptom for a in dataset.corpus.annotations}, key=lambda s: (s not in SYMPTOMS, SYMPTOMS.index(s) if s in SYMPTOMS else 0, s)
    )
    symptoms = [{"symptom": s, "status_1": by_symptom[(s, 1)], "status_0": by_symptom[(s, 0)]} for s in labels]
    skip_counts = Counter((Path(skip.file).name, skip.reason) for skip in dataset.corpus.skips)
    skips = [{"file": file, "reason": reason, "count": count} for (file, reason), count in sorted(skip_counts.items())]
    return {"alignment": alignment, "splits": splits, "symptoms": symptoms, "skips": skips}


def print_summary(dataset: Dataset, console: Console | None = None) -> None:
    """Print the summary tables with rich (to ``console``, or a new one on stdout).

    The alignment table also gives each method's score range (for ``unaligned``: the range of the
    best scores that fell short), so thresholds can be judged at a glance.
    """
    console = console or Console()
    scores: dict[str, list[float]] = {}
    for alignment in dataset.alignment.alignments:
        scores.setdefault(alignment.method, []).append(alignment.score)
    score_range = {method: f"{min(values):.3f}-{max(values):.3f}" for method, values in scores.items()}
    corpus = dataset.corpus
    source = "synthetic demo corpus (bundled, not real data)" if corpus.synthetic else f"{corpus.posts_path} + {corpus.annotations_path}"
    console.print(f"[bold]Data:[/bold] {source}")
    console.print(
        f"{len(corpus.posts)} posts, {len(corpus.annotations)} annotation rows, {len(dataset.examples)} examples, "
        f"{dataset.posts_without_evidence} posts without evidence, {len(corpus.skips)} rows skipped"
    )
    titles = {
        "alignment": "Annotation rows per alignment method",
        "splits": "Posts and examples per split",
        "symptoms": "Annotation rows per symptom",
        "skips": "Skipped rows",
    }
    for name, rows in summary_tables(dataset).items():
        if not rows:
            continue
        if name == "alignment":
            rows = [row | {"score_range": score_range.get(row["method"], "")} for row in rows]
        table = Table(title=titles[name])
        for key in rows[0]:
            table.add_column(key.replace("_", " "), justify="right" if isinstance(rows[0][key], int) or key == "score_range" else "left")
        for row in rows:
            table.add_row(*(str(value) for value in row.values()))
        console.print(table)
    for note in dataset.alignment.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
