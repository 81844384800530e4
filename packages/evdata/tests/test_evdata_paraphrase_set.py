"""The hand-written paraphrase set is consistent, and the cascade meets its targets on the held-out part.

The scores need a real sentence encoder (evmodel's MiniLM); evdata's own test session runs without
torch, so that test skips there and runs wherever evmodel is installed.
"""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from evdata.align import align_corpus
from evdata.readers import read_annotations, read_posts
from evdata.records import Corpus
from evdata.settings import DataSettings

HERE = Path(__file__).parent / "data" / "paraphrase"
KINDS = {"sentence", "clause", "run", "control"}


def _evaluate_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("paraphrase_evaluate", HERE / "evaluate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_expected_span_is_in_its_post_and_every_row_is_labelled() -> None:
    posts, _ = read_posts(HERE / "posts.csv")
    rows, skips = read_annotations(HERE / "annotations.csv")
    texts = {p.post_id: p.text for p in posts}
    expected = json.loads((HERE / "expected.json").read_text(encoding="utf-8"))
    assert skips == () and [e["sentence_id"] for e in expected] == [r.sentence_id for r in rows]
    assert len(expected) >= 150
    assert {e["kind"] for e in expected} == KINDS and {e["part"] for e in expected} == {"tune", "holdout"}
    for item, row in zip(expected, rows):
        assert item["annotation"] == row.sentence_text and item["post_id"] == row.post_id
        assert (item["expected_span"] is None) == (item["kind"] == "control")
        if item["expected_span"] is not None:
            assert item["expected_span"] in texts[item["post_id"]]
    # A post lies wholly in one part, so tuning never sees a held-out post.
    parts = {(e["post_id"], e["part"]) for e in expected}
    assert len(parts) == len({post_id for post_id, _ in parts})
    # Both parts hold every kind.
    assert all(n >= 5 for n in Counter((e["part"], e["kind"]) for e in expected).values())


def test_no_paraphrase_aligns_without_a_sentence_encoder() -> None:
    posts, _ = read_posts(HERE / "posts.csv")
    rows, _ = read_annotations(HERE / "annotations.csv")
    result = align_corpus(Corpus(posts=posts, annotations=rows), DataSettings())
    assert {a.method for a in result.alignments} == {"unaligned"}


def test_correct_rule_accepts_overlap_or_the_sentence_around_a_clause() -> None:
    evaluate = _evaluate_module()
    text = "I moved in May. My parents paid for everything, and I feel so guilty about it. Bye."
    clause = text.index("I feel so guilty")
    want = (clause, clause + len("I feel so guilty about it."))
    sentence = (text.index("My parents"), want[1])
    assert evaluate.is_correct(text, want, want)
    assert evaluate.is_correct(text, sentence, want)  # the whole sentence holding the clause
    assert not evaluate.is_correct(text, (sentence[0], len(text)), want)  # spills into the next sentence
    assert not evaluate.is_correct(text, (0, sentence[0] - 1), want)


def test_holdout_precision_and_recall_with_the_bundled_encoder() -> None:
    pytest.importorskip("evmodel")
    from evmodel.similarity import EncoderSimilarity

    evaluate = _evaluate_module()
    summary, rows = evaluate.evaluate(DataSettings(), EncoderSimilarity(), "holdout")
    wrong = [(r["sentence_id"], r["got"], r["want"]) for r in rows if r["verdict"] == "wrong"]
    assert summary["precision"] >= 0.97, wrong
    assert summary["recall"] >= 0.85, [r["sentence_id"] for r in rows if r["verdict"] == "unaligned" and r["want"]]
