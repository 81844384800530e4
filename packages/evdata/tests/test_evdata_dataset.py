"""load_dataset end to end: every post split once, summary tables add up, synthetic data says so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from evdata.dataset import examples_by_split, load_dataset, print_summary, summary_tables
from evdata.settings import DataSettings


@pytest.fixture(scope="module")
def demo():
    return load_dataset(DataSettings())


def test_demo_dataset_is_split_by_post(demo) -> None:
    split = demo.split
    all_posts = [p for name in ("train", "val", "test") for p in split.post_ids[name]]
    assert sorted(all_posts) == sorted(p.post_id for p in demo.corpus.posts)
    for name in ("train", "val", "test"):
        assert split.examples[name], name
        assert {e.post_id for e in split.examples[name]} <= set(split.post_ids[name])
    assert sum(len(v) for v in split.examples.values()) == len(demo.examples)
    # Every post is asked every symptom; a post without evidence is one whose examples all lack an answer.
    assert {e.post_id for e in demo.examples} == {p.post_id for p in demo.corpus.posts}
    assert demo.posts_without_evidence == len(demo.corpus.posts) - len({e.post_id for e in demo.examples if e.answers})
    assert examples_by_split(demo, "val") == split.examples["val"]
    with pytest.raises(KeyError, match="unknown split"):
        examples_by_split(demo, "dev")


def test_summary_tables_add_up(demo) -> None:
    tables = summary_tables(demo)
    alignment = {row["method"]: row for row in tables["alignment"]}
    assert alignment["all"]["total"] == len(demo.corpus.annotations)
    assert sum(row["total"] for name, row in alignment.items() if name != "all") == len(demo.corpus.annotations)
    for method in ("exact", "casefold", "normalized", "fuzzy", "unaligned"):
        assert alignment[method]["total"] > 0, method
    assert alignment["semantic"]["total"] == 0  # no scorer given
    assert sum(row["posts"] for row in tables["splits"]) == len(demo.corpus.posts)
    assert sum(row["examples"] for row in tables["splits"]) == len(demo.examples)
    assert any(row["symptom"] == "SPECIAL_CASE" for row in tables["symptoms"])
    assert tables["skips"] == []


def test_print_summary_says_synthetic(demo) -> None:
    console = Console(record=True, width=120)
    print_summary(demo, console)
    text = console.export_text()
    assert "synthetic demo corpus" in text
    assert "semantic step skipped" in text
    assert "exact" in text and "train" in text


def test_small_corpus_gets_every_split_and_skips_are_tabled(tmp_path: Path) -> None:
    (tmp_path / "posts.csv").write_text("post_id,text\n" + "".join(f"p{i},I feel tired {i}. Fine.\n" for i in range(3)) + "p9,\n")
    (tmp_path / "annotations.csv").write_text(
        "post_id,sentence_id,sentence_text,DSM5_symptom,status,explanation\n"
        + "".join(f"p{i},s{i},I feel tired {i}.,FATIGUE,1,\n" for i in range(3))
        + "px,s9,Gone.,FATIGUE,1,\n"
    )
    dataset = load_dataset(DataSettings(data_dir=str(tmp_path), question_mode="empty"))
    assert all(len(dataset.split.examples[name]) == 1 for name in ("train", "val", "test"))
    skips = summary_tables(dataset)["skips"]
    assert {(row["file"], row["reason"], row["count"]) for row in skips} == {
        ("posts.csv", "empty post text", 1),
        ("annotations.csv", "annotation for unknown post", 1),
    }
    console = Console(record=True, width=120)
    print_summary(dataset, console)
    assert "synthetic" not in console.export_text()


def test_evdata_never_imports_torch_or_numpy() -> None:
    code = (
        "import sys, evdata, evdata.dataset, evdata.demo.generate\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'numpy'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
