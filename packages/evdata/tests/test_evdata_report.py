"""The alignment report accounts for every annotation row, in file order."""

from __future__ import annotations

import json
from pathlib import Path

from evdata.align import align_corpus
from evdata.readers import read_corpus
from evdata.report import alignment_report, write_alignment_report
from evdata.settings import DataSettings

KEYS = {"post_id", "sentence_id", "symptom", "status", "method", "start", "end", "score", "line", "note", "reason"}
KEYS |= {"runner_up_text", "runner_up_start", "runner_up_end", "runner_up_score"}


def test_one_entry_per_annotation_row_in_file_order(tmp_path: Path) -> None:
    (tmp_path / "posts.csv").write_text("post_id,text\np1,I can't sleep. My cat is fine.\np2,Nothing to see.\n", encoding="utf-8")
    (tmp_path / "annotations.csv").write_text(
        "post_id,sentence_id,sentence_text,DSM5_symptom,status,explanation\n"
        "p2,s1,Nothing to see.,FATIGUE,0,\n"
        "p1,s2,I CAN'T SLEEP.,SLEEP_ISSUES,1,\n"
        "p1,s3,Something else entirely.,FATIGUE,1,\n"
        "p1,s3,Something else entirely.,FATIGUE,1,\n"  # exact duplicate: skipped by the reader, reported there
        "p1,s4,I can't sleep.,FATIGUE,1,\n",
        encoding="utf-8",
    )
    corpus = read_corpus(DataSettings(data_dir=str(tmp_path)))
    result = align_corpus(corpus, DataSettings())
    report = alignment_report(result)
    assert len(report) == len(corpus.annotations) == 4
    assert [row["sentence_id"] for row in report] == ["s1", "s2", "s3", "s4"]
    assert [row["line"] for row in report] == [2, 3, 4, 6]
    assert [row["method"] for row in report] == ["exact", "casefold", "unaligned", "exact"]
    assert all(set(row) == KEYS for row in report)
    assert report[1]["start"] == 0 and report[1]["end"] == len("I can't sleep.")
    assert report[2]["start"] is None and report[2]["end"] is None and report[2]["note"]
    path = write_alignment_report(tmp_path / "out" / "report.json", result)
    assert json.loads(path.read_text(encoding="utf-8")) == report


def test_demo_report_covers_every_row() -> None:
    corpus = read_corpus(DataSettings())
    report = alignment_report(align_corpus(corpus, DataSettings()))
    assert len(report) == len(corpus.annotations)
    assert [(r["post_id"], r["sentence_id"], r["line"]) for r in report] == [(a.post_id, a.sentence_id, a.line) for a in corpus.annotations]
