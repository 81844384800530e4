"""Readers: every error names file, line and column; every skip is counted with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from evdata.readers import (
    SKIP_DUPLICATE_ROW,
    SKIP_EMPTY_SENTENCE,
    SKIP_EMPTY_SYMPTOM,
    SKIP_EMPTY_TEXT,
    SKIP_SKIPPED_POST,
    SKIP_UNKNOWN_POST,
    DataError,
    find_data_files,
    read_annotations,
    read_corpus,
    read_posts,
)
from evdata.settings import DataSettings

HEADER = "post_id,sentence_id,sentence_text,DSM5_symptom,status,explanation\n"


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def error_of(excinfo: pytest.ExceptionInfo[DataError]) -> tuple[str, int, str, str]:
    exc = excinfo.value
    return Path(exc.file).name, exc.line, exc.column, str(exc)


# --- well-formed input ---------------------------------------------------------------------------


def test_posts_csv_with_bom_crlf_and_quoted_fields(tmp_path: Path) -> None:
    text = 'post_id,text\r\np1,"Hello, ""world""\r\nsecond line"\r\np2,plain\r\n'
    posts, skips = read_posts(write(tmp_path / "posts.csv", b"\xef\xbb\xbf" + text.encode()))
    assert [p.post_id for p in posts] == ["p1", "p2"]
    assert posts[0].text == 'Hello, "world"\r\nsecond line'
    # Line numbers are physical lines where each record starts; p1's text spans lines 2-3.
    assert [p.line for p in posts] == [2, 4]
    assert skips == ()


def test_posts_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path / "posts.jsonl", '{"post_id": "a", "text": "one"}\n\n{"post_id": 7, "text": "two", "title": "x"}\n')
    posts, _ = read_posts(path)
    assert [(p.post_id, p.text, p.line) for p in posts] == [("a", "one", 1), ("7", "two", 3)]


def test_annotations_quoted_explanation_and_special_case_kept(tmp_path: Path) -> None:
    path = write(
        tmp_path / "annotations.csv",
        HEADER + 'p1,s1,"I can\'t sleep, at all.",SLEEP_ISSUES,1,"Says ""can\'t sleep"",\nclearly."\np1,s2,Odd one.,SPECIAL_CASE,0,\n',
    )
    rows, skips = read_annotations(path)
    assert [(r.sentence_id, r.symptom, r.status, r.line) for r in rows] == [("s1", "SLEEP_ISSUES", 1, 2), ("s2", "SPECIAL_CASE", 0, 4)]
    assert rows[0].sentence_text == "I can't sleep, at all."
    assert rows[0].explanation == 'Says "can\'t sleep",\nclearly.'
    assert skips == ()


def test_annotations_without_explanation_column(tmp_path: Path) -> None:
    path = write(tmp_path / "annotations.csv", "post_id,sentence_id,sentence_text,DSM5_symptom,status\np1,s1,Text.,FATIGUE,1\n")
    rows, _ = read_annotations(path)
    assert rows[0].explanation == ""


def test_header_names_match_ignoring_case_and_spaces(tmp_path: Path) -> None:
    posts, _ = read_posts(write(tmp_path / "posts.csv", " Post_ID , Text ,extra\np1,hello,ignored\n"))
    assert posts[0].text == "hello"


# --- errors --------------------------------------------------------------------------------------


def test_missing_column_in_posts(tmp_path: Path) -> None:
    with pytest.raises(DataError) as excinfo:
        read_posts(write(tmp_path / "posts.csv", "post_id,body\np1,hello\n"))
    name, line, column, message = error_of(excinfo)
    assert (name, line, column) == ("posts.csv", 1, "text")
    assert "missing column 'text'" in message and "'body'" in message


def test_missing_column_in_annotations(tmp_path: Path) -> None:
    with pytest.raises(DataError) as excinfo:
        read_annotations(write(tmp_path / "annotations.csv", "post_id,sentence_id,sentence_text,status\np1,s1,x,1\n"))
    assert error_of(excinfo)[:3] == ("annotations.csv", 1, "DSM5_symptom")


def test_missing_field_in_jsonl(tmp_path: Path) -> None:
    with pytest.raises(DataError) as excinfo:
        read_posts(write(tmp_path / "posts.jsonl", '{"post_id": "a", "text": "x"}\n{"post_id": "b"}\n'))
    assert error_of(excinfo)[:3] == ("posts.jsonl", 2, "text")


@pytest.mark.parametrize("content", ["", "\n  \n", "\ufeff"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    with pytest.raises(DataError) as excinfo:
        read_posts(write(tmp_path / "posts.csv", content))
    name, line, _, message = error_of(excinfo)
    assert (name, line) == ("posts.csv", 1) and "empty" in message


def test_header_without_records(tmp_path: Path) -> None:
    with pytest.raises(DataError) as excinfo:
        read_annotations(write(tmp_path / "annotations.csv", HEADER))
    name, line, _, message = error_of(excinfo)
    assert (name, line) == ("annotations.csv", 2) and "no records" in message


def test_empty_jsonl(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty"):
        read_posts(write(tmp_path / "posts.jsonl", "\n"))


def test_duplicate_post_id_names_both_lines(tmp_path: Path) -> None:
    with pytest.raises(DataError) as excinfo:
        read_posts(write(tmp_path / "posts.csv", 'post_id,text\np1,"a\nb"\np2,c\np1,d\n'))
    name, line, column, message = error_of(excinfo)
    assert (name, line, column) == ("posts.csv", 5, "post_id")
    assert "lines 2 and 5" in message


def test_empty_post_id(tmp_path: Path) -> None:
    with pytest.raises(DataError) as excinfo:
        read_posts(write(tmp_path / "posts.csv", "post_id,text\n ,hello\n"))
    assert error_of(excinfo)[:3] == ("posts.csv", 2, "post_id")


@pytest.mark.parametrize("status", ["2", "yes", "", "-1"])
def test_status_not_0_or_1(tmp_path: Path, status: str) -> None:
    with pytest.raises(DataError) as excinfo:
        read_annotations(write(tmp_path / "annotations.csv", HEADER + f"p1,s1,ok,FATIGUE,1,\np1,s2,text,FATIGUE,{status},\n"))
    name, line, column, message = error_of(excinfo)
    assert (name, line, column) == ("annotations.csv", 3, "status")
    assert "0 or 1" in message


def test_status_written_as_float_is_accepted(tmp_path: Path) -> None:
    rows, _ = read_annotations(write(tmp_path / "annotations.csv", HEADER + "p1,s1,text,FATIGUE,1.0,\n"))
    assert rows[0].status == 1


def test_non_utf8_bytes(tmp_path: Path) -> None:
    path = write(tmp_path / "posts.csv", b"post_id,text\np1,fine\np2,caf\xe9 latte\n")
    with pytest.raises(DataError) as excinfo:
        read_posts(path)
    name, line, column, message = error_of(excinfo)
    assert (name, line, column) == ("posts.csv", 3, "byte 7")
    assert "UTF-8" in message


def test_jsonl_bad_json(tmp_path: Path) -> None:
    with pytest.raises(DataError) as excinfo:
        read_posts(write(tmp_path / "posts.jsonl", '{"post_id": "a", "text": "x"}\n{"post_id": "b", "text": }\n'))
    name, line, column, message = error_of(excinfo)
    assert (name, line) == ("posts.jsonl", 2) and column.startswith("char ") and "not valid JSON" in message


def test_jsonl_line_not_an_object(tmp_path: Path) -> None:
    with pytest.raises(DataError) as excinfo:
        read_posts(write(tmp_path / "posts.jsonl", '["a", "x"]\n'))
    name, line, _, message = error_of(excinfo)
    assert (name, line) == ("posts.jsonl", 1) and "JSON object" in message


def test_jsonl_text_not_a_string(tmp_path: Path) -> None:
    with pytest.raises(DataError) as excinfo:
        read_posts(write(tmp_path / "posts.jsonl", '{"post_id": "a", "text": null}\n'))
    assert error_of(excinfo)[:3] == ("posts.jsonl", 1, "text")


def test_record_with_wrong_number_of_fields(tmp_path: Path) -> None:
    with pytest.raises(DataError) as excinfo:
        read_annotations(write(tmp_path / "annotations.csv", HEADER + "p1,s1,text,FATIGUE\n"))
    name, line, column, message = error_of(excinfo)
    assert (name, line, column) == ("annotations.csv", 2, "status") and "4 fields" in message


def test_malformed_csv_quoting(tmp_path: Path) -> None:
    with pytest.raises(DataError) as excinfo:
        read_posts(write(tmp_path / "posts.csv", 'post_id,text\np1,fine\np2,"never closed\n'))
    name, line, _, message = error_of(excinfo)
    assert (name, line) == ("posts.csv", 3) and "malformed CSV" in message


def test_unsupported_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unsupported file type"):
        read_posts(write(tmp_path / "posts.tsv", "post_id\ttext\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_posts(tmp_path / "nope.csv")


def test_error_message_names_file_line_and_column(tmp_path: Path) -> None:
    error = DataError(tmp_path / "a.csv", 12, "status", "status must be 0 or 1")
    assert str(error) == f"{tmp_path / 'a.csv'}, line 12, column status: status must be 0 or 1"


# --- skips ---------------------------------------------------------------------------------------


def test_empty_or_whitespace_post_text_is_skipped(tmp_path: Path) -> None:
    posts, skips = read_posts(write(tmp_path / "posts.csv", 'post_id,text\np1,hello\np2,""\np3,"  \n "\n'))
    assert [p.post_id for p in posts] == ["p1"]
    assert [(s.line, s.field, s.reason) for s in skips] == [(3, "text", SKIP_EMPTY_TEXT), (4, "text", SKIP_EMPTY_TEXT)]


def test_annotation_skips(tmp_path: Path) -> None:
    body = (
        "p1,s1,Text.,FATIGUE,1,why\n"
        "p1,s2,   ,FATIGUE,1,\n"
        "p1,s3,Other.,,1,\n"
        "p1,s1,Text.,FATIGUE,1,why\n"
        "p1,s1,Text.,FATIGUE,1,another reason\n"  # differs in explanation: not an exact duplicate
    )
    rows, skips = read_annotations(write(tmp_path / "annotations.csv", HEADER + body))
    assert [r.line for r in rows] == [2, 6]
    assert [(s.line, s.reason) for s in skips] == [(3, SKIP_EMPTY_SENTENCE), (4, SKIP_EMPTY_SYMPTOM), (5, SKIP_DUPLICATE_ROW)]


def test_read_corpus_skips_annotations_for_unknown_and_skipped_posts(tmp_path: Path) -> None:
    write(tmp_path / "posts.csv", "post_id,text\np1,Hello there.\np2,\n")
    write(tmp_path / "annotations.csv", HEADER + "p1,s1,Hello there.,FATIGUE,1,\nzz,s2,Gone.,FATIGUE,1,\np2,s3,Empty.,FATIGUE,0,\n")
    corpus = read_corpus(DataSettings(data_dir=str(tmp_path)))
    assert [a.sentence_id for a in corpus.annotations] == ["s1"]
    assert [(Path(s.file).name, s.line, s.reason) for s in corpus.skips] == [
        ("posts.csv", 3, SKIP_EMPTY_TEXT),
        ("annotations.csv", 3, SKIP_UNKNOWN_POST),
        ("annotations.csv", 4, SKIP_SKIPPED_POST),
    ]
    assert not corpus.synthetic


# --- finding files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("posts_name", "annotations_name"),
    [
        ("posts.csv", "annotations.csv"),
        ("posts.jsonl", "annotations.csv"),
        ("redsm5_posts.csv", "redsm5_annotations.csv"),
        ("redsm5_posts.jsonl", "annotations.csv"),
    ],
)
def test_find_data_files_accepts_redsm5_names(tmp_path: Path, posts_name: str, annotations_name: str) -> None:
    write(tmp_path / posts_name, "x")
    write(tmp_path / annotations_name, "x")
    assert find_data_files(tmp_path) == (tmp_path / posts_name, tmp_path / annotations_name)


def test_find_data_files_lists_what_it_looked_for(tmp_path: Path) -> None:
    write(tmp_path / "posts.csv", "x")
    with pytest.raises(DataError) as excinfo:
        find_data_files(tmp_path)
    assert "annotations.csv, redsm5_annotations.csv" in str(excinfo.value)


def test_find_data_files_refuses_to_guess_between_two(tmp_path: Path) -> None:
    write(tmp_path / "posts.csv", "x")
    write(tmp_path / "redsm5_posts.csv", "x")
    write(tmp_path / "annotations.csv", "x")
    with pytest.raises(DataError, match="more than one posts file"):
        find_data_files(tmp_path)


def test_find_data_files_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        find_data_files(tmp_path / "nope")


def test_read_corpus_defaults_to_synthetic_demo() -> None:
    corpus = read_corpus(DataSettings())
    assert corpus.synthetic
    assert len(corpus.posts) >= 600 and corpus.annotations and corpus.skips == ()


def test_explicit_files_override_data_dir(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    write(tmp_path / "dir" / "posts.csv", "post_id,text\nfrom_dir,Hello.\n")
    write(tmp_path / "dir" / "annotations.csv", HEADER + "from_dir,s1,Hello.,FATIGUE,1,\n")
    other = write(tmp_path / "mine.jsonl", '{"post_id": "mine", "text": "Hi."}\n')
    corpus = read_corpus(DataSettings(data_dir=str(tmp_path / "dir"), posts_file=str(other)))
    assert [p.post_id for p in corpus.posts] == ["mine"]
    assert corpus.annotations == () and [s.reason for s in corpus.skips] == [SKIP_UNKNOWN_POST]


def test_one_explicit_file_without_data_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.annotations_file"):
        read_corpus(DataSettings(posts_file=str(tmp_path / "p.csv")))
