"""Score the alignment cascade on the hand-written paraphrase set in this folder.

Usage (from the repository root)::

    python packages/evdata/tests/data/paraphrase/evaluate.py --scorer MODULE:FACTORY [--threshold T] [--margin M]
    python packages/evdata/tests/data/paraphrase/evaluate.py --scorer /path/file.py:FACTORY --grid

``FACTORY`` is called with no arguments and must return an object with the ``SentenceSimilarity``
protocol of ``evdata.align``. Without ``--scorer`` only the steps up to fuzzy run (which is the point:
none of these rows should align without a sentence encoder).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
from collections import Counter
from pathlib import Path
from typing import Any

import attrs

from evdata.align import SentenceSimilarity, align_corpus
from evdata.readers import read_annotations, read_posts
from evdata.records import Corpus
from evdata.settings import DataSettings

HERE = Path(__file__).resolve().parent


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


def evaluate(settings: DataSettings, similarity: SentenceSimilarity | None) -> tuple[Counter[str], list[dict[str, Any]]]:
    """Align the set and compare with expected.json: counts per verdict and one row per annotation."""
    posts, _ = read_posts(HERE / "posts.csv")
    annotations, _ = read_annotations(HERE / "annotations.csv")
    expected = {item["sentence_id"]: item["expected_sentence"] for item in json.loads((HERE / "expected.json").read_text("utf-8"))}
    texts = {post.post_id: post.text for post in posts}
    result = align_corpus(Corpus(posts=posts, annotations=annotations), settings, similarity)
    counts: Counter[str] = Counter()
    rows = []
    for alignment in result.alignments:
        want = expected[alignment.annotation.sentence_id]
        got = texts[alignment.annotation.post_id][alignment.span.start : alignment.span.end] if alignment.span else None
        if want is None:
            verdict = "control unaligned (right)" if got is None else "control ALIGNED (wrong)"
        elif got is None:
            verdict = "unaligned"
        else:
            verdict = "correct" if got.strip() == want.strip() else "WRONG"
        counts[verdict] += 1
        rows.append(
            {
                "sentence_id": alignment.annotation.sentence_id,
                "verdict": verdict,
                "method": alignment.method,
                "score": round(alignment.score, 3),
                "got": got,
                "want": want,
            }
        )
    return counts, rows


def main() -> None:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorer", default="", help="MODULE:FACTORY or FILE.py:FACTORY returning a SentenceSimilarity")
    parser.add_argument("--threshold", type=float, default=None, help="data.semantic_threshold (default: settings default)")
    parser.add_argument("--margin", type=float, default=None, help="data.semantic_margin (default: settings default)")
    parser.add_argument("--grid", action="store_true", help="sweep thresholds 0.50..0.80 and margins 0.00..0.10")
    parser.add_argument("--verbose", action="store_true", help="print every row")
    args = parser.parse_args()
    scorer = load_scorer(args.scorer) if args.scorer else None
    base = DataSettings()
    if args.threshold is not None:
        base = attrs.evolve(base, semantic_threshold=args.threshold)
    if args.margin is not None:
        base = attrs.evolve(base, semantic_margin=args.margin)
    grid = (
        [(t / 100, m / 100) for t in range(50, 81, 5) for m in (0, 2, 4, 5, 6, 8, 10)]
        if args.grid
        else [(base.semantic_threshold, base.semantic_margin)]
    )
    for threshold, margin in grid:
        counts, rows = evaluate(attrs.evolve(base, semantic_threshold=threshold, semantic_margin=margin), scorer)
        print(f"threshold {threshold:.2f} margin {margin:.2f}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        if args.verbose:
            for row in rows:
                print(f"  {row['sentence_id']}: {row['verdict']:<26} {row['method']:<10} {row['score']:<6} got={row['got']!r}")


if __name__ == "__main__":
    main()
