"""Score the alignment cascade on the hand-written paraphrase set in this folder.

Usage (from the repository root)::

    python packages/evdata/tests/data/paraphrase/evaluate.py --scorer MODULE:FACTORY [--part holdout] [--set key=value ...]
    python packages/evdata/tests/data/paraphrase/evaluate.py --scorer evmodel.similarity:EncoderSimilarity --verbose
    python packages/evdata/tests/data/paraphrase/evaluate.py --scorer evmodel.similarity:EncoderSimilarity --grid

``FACTORY`` is called with no arguments and must return an object with the ``SentenceSimilarity``
protocol of ``evdata.align``. Without ``--scorer`` only the steps up to fuzzy run (which is the point:
none of these rows should align without a sentence encoder). ``--set`` overrides a ``DataSettings``
field (``--set semantic_threshold=0.6``); ``--grid`` sweeps the decision thresholds on the TUNE part only.

Correct, the rule (also in README.md): let E be the expected span (the first occurrence of
``expected_span`` in the post) and A the aligned span. A is correct when

- the character IoU of A and E is at least 0.5, or
- A contains E and lies within the post sentence(s) that E touches (the whole sentence of an
  expected clause is a right answer: it holds the evidence and nothing from other sentences).

Any other aligned span is wrong; an aligned control row (``expected_span`` null) is wrong.
Precision = correct / aligned rows; recall = correct / rows that have an expected span.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import itertools
import json
import tomllib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from evdata.align import METHODS, SentenceSimilarity, align_corpus
from evdata.readers import read_annotations, read_posts
from evdata.records import Corpus
from evdata.sentences import split_sentences
from evdata.settings import DataSettings

HERE = Path(__file__).resolve().parent
PARTS = ("tune", "holdout", "all")
MIN_IOU = 0.5


def load_scorer(spec: str) -> SentenceSimilarity:
    """``module:factory`` or ``path/to/file.py:factory`` -> the scorer the factory returns."""
    target, _, name = spec.rpartition(":")
    if target.endswith(".py"):
        module_spec = importlib.util.spec_from_file_location("paraphrase_scorer", target)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    return getattr(module, name)()


class CachedSimilarity:
    """Remembers every (query, candidate) cosine, so a threshold sweep embeds each text once."""

    def __init__(self, inner: SentenceSimilarity) -> None:
        self.inner = inner
        self.cache: dict[tuple[str, str], float] = {}

    def similarity(self, queries: Sequence[str], candidates: Sequence[str]) -> list[list[float]]:
        missing_q = [q for q in dict.fromkeys(queries) if any((q, c) not in self.cache for c in candidates)]
        if missing_q and candidates:
            missing_c = list(dict.fromkeys(c for c in candidates if any((q, c) not in self.cache for q in missing_q)))
            for q, row in zip(missing_q, self.inner.similarity(missing_q, missing_c)):
                for c, value in zip(missing_c, row):
                    self.cache[(q, c)] = float(value)
        return [[self.cache[(q, c)] for c in candidates] for q in queries]


def load_set() -> tuple[Corpus, list[dict[str, Any]]]:
    """The set as a corpus, and expected.json (one item per annotation row, in file order)."""
    posts, _ = read_posts(HERE / "posts.csv")
    annotations, _ = read_annotations(HERE / "annotations.csv")
    expected = json.loads((HERE / "expected.json").read_text("utf-8"))
    return Corpus(posts=posts, annotations=annotations), expected


def expected_offsets(text: str, expected: str) -> tuple[int, int]:
    """Where the expected span sits in its post (first occurrence)."""
    start = text.find(expected)
    if start < 0:
        raise ValueError(f"expected span not in its post: {expected!r}")
    return start, start + len(expected)


def is_correct(text: str, got: tuple[int, int], want: tuple[int, int]) -> bool:
    """The rule in the module docstring: IoU >= 0.5, or containment within the expected span's sentences."""
    (s, e), (a, b) = got, want
    inter = max(0, min(e, b) - max(s, a))
    union = max(e, b) - min(s, a)
    if union and inter / union >= MIN_IOU:
        return True
    if not (s <= a and b <= e):
        return False
    touched = [(x, y) for x, y in split_sentences(text) if x < b and a < y]
    return bool(touched) and touched[0][0] <= s and e <= touched[-1][1]


def evaluate(
    settings: DataSettings, similarity: SentenceSimilarity | None, part: str = "all"
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Align the set and compare with expected.json: summary figures and one row per annotation of ``part``."""
    corpus, expected = load_set()
    if part != "all":  # align only the posts of that part (each post lies in one part)
        expected = [item for item in expected if item["part"] == part]
        keep = {item["post_id"] for item in expected}
        corpus = Corpus(
            posts=tuple(p for p in corpus.posts if p.post_id in keep), annotations=tuple(a for a in corpus.annotations if a.post_id in keep)
        )
    texts = {post.post_id: post.text for post in corpus.posts}
    result = align_corpus(corpus, settings, similarity)
    rows = []
    for alignment, item in zip(result.alignments, expected, strict=True):
        assert alignment.annotation.sentence_id == item["sentence_id"]
        text = texts[item["post_id"]]
        span = alignment.span
        got = (span.start, span.end) if span is not None else None
        want = expected_offsets(text, item["expected_span"]) if item["expected_span"] is not None else None
        if got is None:
            verdict = "unaligned"
        elif want is None:
            verdict = "wrong"
        else:
            verdict = "correct" if is_correct(text, got, want) else "wrong"
        rows.append(
            {
                "sentence_id": item["sentence_id"],
                "kind": item["kind"],
                "part": item["part"],
                "verdict": verdict,
                "method": alignment.method,
                "score": round(alignment.score, 3),
                "annotation": item["annotation"],
                "got": text[got[0] : got[1]] if got else None,
                "want": item["expected_span"],
                "note": alignment.note,
                "reason": alignment.reason,
                "runner_up": alignment.runner_up_text or None,
                "runner_up_score": round(alignment.runner_up.score, 3) if alignment.runner_up else None,
            }
        )
    return summarize(rows), rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Precision and recall overall, per method and per kind."""
    positives = sum(r["want"] is not None for r in rows)
    aligned = sum(r["got"] is not None for r in rows)
    correct = sum(r["verdict"] == "correct" for r in rows)
    per_method = {}
    for method in [*METHODS, *sorted({r["method"] for r in rows} - set(METHODS))]:
        mine = [r for r in rows if r["method"] == method]
        n_correct = sum(r["verdict"] == "correct" for r in mine)
        n_wrong = sum(r["verdict"] == "wrong" for r in mine)
        per_method[method] = {"rows": len(mine), "correct": n_correct, "wrong": n_wrong}
    per_kind = {}
    for kind in ("sentence", "clause", "run", "control"):
        mine = [r for r in rows if r["kind"] == kind]
        per_kind[kind] = Counter(r["verdict"] for r in mine) | Counter(rows=len(mine))
    return {
        "rows": len(rows),
        "positives": positives,
        "aligned": aligned,
        "correct": correct,
        "wrong": aligned - correct,
        "precision": correct / aligned if aligned else 1.0,
        "recall": correct / positives if positives else 1.0,
        "per_method": per_method,
        "per_kind": per_kind,
    }


def print_table(summary: dict[str, Any], title: str) -> None:
    """Per-method table: rows, correct, wrong, precision, share of the recall."""
    print(f"\n{title}: {summary['rows']} rows, {summary['positives']} with an expected span")
    print(f"{'method':<20}{'rows':>6}{'correct':>9}{'wrong':>7}{'precision':>11}{'recall':>8}")
    for method, m in summary["per_method"].items():
        aligned = m["correct"] + m["wrong"]
        precision = f"{m['correct'] / aligned:.3f}" if aligned and method != "unaligned" else "-"
        recall = f"{m['correct'] / summary['positives']:.3f}" if summary["positives"] and method != "unaligned" else "-"
        print(f"{method:<20}{m['rows']:>6}{m['correct']:>9}{m['wrong']:>7}{precision:>11}{recall:>8}")
    print(
        f"{'all aligned':<20}{summary['aligned']:>6}{summary['correct']:>9}{summary['wrong']:>7}"
        f"{summary['precision']:>11.3f}{summary['recall']:>8.3f}"
    )
    kinds = ", ".join(
        f"{kind} {c['rows']}: {c['correct']} correct/{c['wrong']} wrong/{c['unaligned']} unaligned"
        for kind, c in summary["per_kind"].items()
    )
    print(f"per kind: {kinds}")


def _override(settings: DataSettings, items: Sequence[str]) -> DataSettings:
    changes = {}
    for item in items:
        key, _, raw = item.partition("=")
        changes[key.strip()] = tomllib.loads(f"v = {raw.strip()}")["v"]
    return attrs.evolve(settings, **changes)


# What --grid sweeps (on the tune part only): DataSettings fields and their values.
GRID: dict[str, tuple[float, ...]] = {
    "semantic_threshold": (0.50, 0.525, 0.55, 0.575, 0.60, 0.625),
    "semantic_margin": (0.0, 0.05, 0.10, 0.15, 0.20),
    "lexical_weight": (0.0, 0.05, 0.1, 0.2),
    "clause_penalty": (0.0, 0.05, 0.10, 0.15),
}
# The choice rule: the highest tune recall among settings at or above this tune precision; ties go to
# the higher precision, then the higher threshold, then the larger margin (precision first).
MIN_PRECISION = 0.975


def main() -> None:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", default="", help="MODULE:FACTORY or FILE.py:FACTORY returning a SentenceSimilarity")
    parser.add_argument("--part", choices=PARTS, default="all", help="score the tune part, the holdout part, or all rows")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a DataSettings field")
    parser.add_argument("--grid", action="store_true", help="sweep the GRID settings on the tune part; print the best")
    parser.add_argument("--verbose", action="store_true", help="print every wrong row and every unaligned row that has an expected span")
    args = parser.parse_args()
    scorer = CachedSimilarity(load_scorer(args.scorer)) if args.scorer else None
    base = _override(DataSettings(), args.set)
    if args.grid:
        results = []
        for values in itertools.product(*GRID.values()):
            choice = dict(zip(GRID, values))
            summary, _ = evaluate(attrs.evolve(base, **choice), scorer, "tune")
            key = (
                summary["precision"] >= MIN_PRECISION,
                summary["recall"],
                summary["precision"],
                choice["semantic_threshold"],
                choice["semantic_margin"],
            )
            results.append((key, choice))
            print(f"{choice}: precision {summary['precision']:.3f} recall {summary['recall']:.3f}", flush=True)
        key, choice = max(results, key=lambda r: r[0])
        print(f"best on tune (precision >= {MIN_PRECISION}, then recall): {choice} precision {key[2]:.3f} recall {key[1]:.3f}")
        return
    parts = PARTS if args.part == "all" else (args.part,)
    for part in parts:
        summary, rows = evaluate(base, scorer, part)
        print_table(summary, f"part {part}")
        if args.verbose:
            for row in rows:
                if row["verdict"] == "wrong" or (row["verdict"] == "unaligned" and row["want"] is not None):
                    print(
                        f"  {row['sentence_id']} [{row['kind']}] {row['verdict']:<9} {row['method']:<10} {row['score']:<6} "
                        f"ann={row['annotation']!r}\n      got={row['got']!r}\n      want={row['want']!r}\n      reason={row['reason']}"
                    )


if __name__ == "__main__":
    main()
