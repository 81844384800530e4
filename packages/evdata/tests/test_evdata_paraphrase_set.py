"""The hand-written paraphrase evaluation set is consistent (its scores need a real encoder; see its README)."""

from __future__ import annotations

import json
from pathlib import Path

from evdata.align import align_corpus
from evdata.readers import read_annotations, read_posts
from evdata.records import Corpus
from evdata.sentences import split_sentences
from evdata.settings import DataSettings

HERE = Path(__file__).parent / "data" / "paraphrase"


def test_every_expected_sentence_is_a_sentence_of_its_post() -> None:
    posts, _ = read_posts(HERE / "posts.csv")
    rows, skips = read_annotations(HERE / "annotations.csv")
    texts = {p.post_id: p.text for p in posts}
    expected = json.loads((HERE / "expected.json").read_text(encoding="utf-8"))
    assert skips == () and [e["sentence_id"] for e in expected] == [r.sentence_id for r in rows]
    assert sum(e["expected_sentence"] is not None for e in expected) >= 40
    for item in expected:
        if item["expected_sentence"] is not None:
            text = texts[item["post_id"]]
            assert item["expected_sentence"] in [text[s:e] for s, e in split_sentences(text)]


def test_no_paraphrase_aligns_without_a_sentence_encoder() -> None:
    posts, _ = read_posts(HERE / "posts.csv")
    rows, _ = read_annotations(HERE / "annotations.csv")
    result = align_corpus(Corpus(posts=posts, annotations=rows), DataSettings())
    assert {a.method for a in result.alignments} == {"unaligned"}
