"""Fuzzing the readers with malformed posts/annotations files built from a grammar of mutations.

Every case ends one of two ways: the reader returns, and every bad row is a ``Skip`` naming its
file, line and field; or it raises ``DataError`` naming the file, a line and (where one applies) a
column. Never another exception type, never a hang (each call runs under a time limit).

Two kinds of property:
- well-formed CSV/JSONL syntax with bad *cells* (blank ids, duplicate ids, wrong status, empty
  texts, ids of posts that do not exist, ...) is checked against a slow, obviously-correct reference
  of the documented rules, down to the exact line and column;
- corrupted *bytes and structure* (missing or extra columns and fields, truncation, stray quotes,
  non-UTF-8 bytes, NUL, UTF-16, CR-only line ends, ...) only have to end cleanly.
"""

from __future__ import annotations

import json
import re
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from evdata.readers import (
    SKIP_DUPLICATE_ROW,
    SKIP_EMPTY_SENTENCE,
    SKIP_EMPTY_SYMPTOM,
    SKIP_EMPTY_TEXT,
    SKIP_SKIPPED_POST,
    SKIP_UNKNOWN_POST,
    DataError,
    read_annotations,
    read_corpus,
    read_posts,
)
from evdata.records import SYMPTOMS, Annotation, Post, Skip
from evdata.settings import DataSettings

T = TypeVar("T")

TIME_LIMIT_S = 10.0  # generous: the CPU is shared; a reader on these files finishes in well under a second
HUGE_POST = " ".join(f"word{i % 97}" for i in range(100_000))  # one post of 100,000 words (~700 KB)
BOM = b"\xef\xbb\xbf"
POST_HEADER = ("post_id", "text")
ANNOTATION_HEADER = ("post_id", "sentence_id", "sentence_text", "DSM5_symptom", "status", "explanation")
SKIP_REASONS = {SKIP_EMPTY_TEXT, SKIP_EMPTY_SENTENCE, SKIP_EMPTY_SYMPTOM, SKIP_DUPLICATE_ROW, SKIP_UNKNOWN_POST, SKIP_SKIPPED_POST}
# DataErrors about a whole line or file, where no single column is to blame.
WHOLE_LINE_ERRORS = ("file is empty", "malformed CSV", "expected a JSON object", "not valid JSON")
VALID_STATUS = ("0", "1", "0.0", "1.0")


class ReaderHang(Exception):
    """A reader ran past the time limit (not a DataError, so the property fails)."""


@contextmanager
def time_limit(seconds: float = TIME_LIMIT_S) -> Iterator[None]:
    """Interrupt the block with ``ReaderHang`` after ``seconds`` (the readers run Python code per row)."""

    def _interrupt(signum: int, frame: object) -> None:
        raise ReaderHang(f"reader still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, _interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_reader(call: Callable[[], T]) -> T | DataError:
    """``call()``'s result, or the ``DataError`` it raised; anything else (or a hang) propagates."""
    start = time.monotonic()
    try:
        with time_limit():
            return call()
    except DataError as exc:
        return exc
    finally:
        assert time.monotonic() - start < TIME_LIMIT_S


def physical_lines(data: bytes) -> int:
    """Line count as the readers number lines (CR, LF and CRLF each end one)."""
    return len(re.findall(rb"\r\n|\r|\n", data)) + 1


def assert_clear_error(exc: DataError, files: dict[str, bytes]) -> None:
    """The error names one of ``files``, a line inside it, and a column unless the whole line is bad."""
    assert exc.file in files, exc
    message = str(exc)
    assert message.startswith(exc.file), message
    assert 1 <= exc.line <= physical_lines(files[exc.file]) + 1, message
    assert f"line {exc.line}" in message
    if not exc.message.startswith(WHOLE_LINE_ERRORS):
        assert exc.column, message
        assert f"column {exc.column}" in message
    # One screen: the message quotes no whole post (a 100,000-word one would flood the terminal).
    assert len(message) < 2000, message[:300]


def assert_skips_located(skips: Sequence[Skip], files: dict[str, bytes]) -> None:
    """Every skip names a file that was read, a line inside it, a field and a known reason."""
    for skip in skips:
        assert skip.file in files, skip
        assert 1 <= skip.line <= physical_lines(files[skip.file]), skip
        assert skip.field, skip
        assert skip.reason in SKIP_REASONS, skip


def assert_posts_sane(posts: Sequence[Post]) -> None:
    ids = [p.post_id for p in posts]
    assert len(set(ids)) == len(ids)
    assert all(i and i == i.strip() for i in ids)
    assert all(p.text.strip() for p in posts)
    assert [p.line for p in posts] == sorted({p.line for p in posts})


def assert_annotations_sane(annotations: Sequence[Annotation]) -> None:
    assert all(a.post_id and a.post_id == a.post_id.strip() for a in annotations)
    assert all(a.status in (0, 1) and a.sentence_text.strip() and a.symptom.strip() for a in annotations)


# --- cell values: the grammar of good and bad fields ---------------------------------------------------------

TRICKY_TEXTS = [
    "",
    " ",
    "\t \n ",
    "\u00a0\u3000",  # non-breaking and ideographic spaces: whitespace to str.strip
    "I can't sleep.",
    'She said "stop", and I did.',
    '""',
    '"',
    "two\nlines",
    "windows\r\nline end",
    "old mac\rline end",
    "comma, inside, twice",
    "tab\tinside",
    "line\u2028separator and next\x85line",
    "form\x0cfeed",
    "nul\x00inside",
    "emoji 😀 and café",
    "\ufeffleading BOM character",
    HUGE_POST,
]
texts = st.one_of(st.sampled_from(TRICKY_TEXTS), st.text(max_size=30))
post_ids = st.one_of(st.sampled_from(["", "  ", " p1 ", "p1\t", "42", "pé"]), st.integers(0, 25).map(lambda i: f"p{i}"))
symptoms = st.sampled_from([*SYMPTOMS[:3], "SPECIAL_CASE", "fatigue", "", "  "])
statuses = st.one_of(st.sampled_from(["0", "1"]), st.sampled_from(["1.0", "0.0", " 1 ", "yes", "2", "", "-1", "true", "01", "1e0"]))


def csv_field(value: str, quote_all: bool) -> str:
    """One field as RFC 4180 writes it (Python 3.11's csv.writer leaves a lone CR unquoted under a LF terminator)."""
    if quote_all or any(ch in value for ch in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_text(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, terminator: str, quote_all: bool, blank_after: set[int]
) -> tuple[str, list[int]]:
    """CSV text, and the physical line where each record starts."""
    parts = [",".join(csv_field(h, quote_all) for h in header) + terminator]
    line = physical_lines(parts[0].encode("utf-8"))
    starts: list[int] = []
    for i, row in enumerate(rows):
        starts.append(line)
        # A record of one empty field would read as a blank line; quoting keeps it a record.
        record = ",".join(csv_field(v, quote_all or len(row) == 1) for v in row) + terminator
        if i in blank_after:
            record += terminator  # a blank line between records is not a record
        parts.append(record)
        line += physical_lines(record.encode("utf-8")) - 1
    return "".join(parts), starts


@st.composite
def csv_layout(draw: st.DrawFn) -> dict[str, Any]:
    """How a well-formed file is written: line ends, quoting, BOM, blank lines, header spelling."""
    return {
        "terminator": draw(st.sampled_from(["\n", "\r\n"])),
        "quote_all": draw(st.booleans()),
        "bom": draw(st.booleans()),
        "blank_after": set(draw(st.lists(st.integers(0, 7), max_size=2))),
        "shout_header": draw(st.booleans()),  # " POST_ID " matches post_id
        "extra_column": draw(st.booleans()),  # extra columns are ignored
    }


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]], layout: dict[str, Any]) -> tuple[bytes, list[int]]:
    """Write ``rows`` under ``header`` as ``layout`` says; return the bytes and each record's start line."""
    header = list(header)
    rows = [list(r) for r in rows]
    if layout["shout_header"]:
        header = [f" {h.upper()} " for h in header]
    if layout["extra_column"]:
        header.insert(1, "title")
        rows = [[r[0], "a title, with a comma", *r[1:]] for r in rows]
    text, starts = csv_text(header, rows, terminator=layout["terminator"], quote_all=layout["quote_all"], blank_after=layout["blank_after"])
    data = (BOM if layout["bom"] else b"") + text.encode("utf-8")
    path.write_bytes(data)
    return data, starts


# --- the reference: the documented rules, applied one row at a time -------------------------------------------


class Expected(Exception):
    """The reference's verdict that the reader must raise DataError at ``line``/``column``."""

    def __init__(self, line: int, column: str) -> None:
        super().__init__(line, column)
        self.line = line
        self.column = column


def reference_posts(
    rows: Sequence[tuple[str, str]], starts: Sequence[int]
) -> tuple[list[tuple[str, str, int]], list[tuple[int, str, str]]]:
    """Posts ``(id, text, line)`` and skips ``(line, field, reason)``, or ``Expected`` for the first bad row."""
    posts, skips, first = [], [], {}
    for (raw_id, text), line in zip(rows, starts):
        post_id = raw_id.strip()
        if not post_id or post_id in first:
            raise Expected(line, "post_id")
        first[post_id] = line
        if text.strip():
            posts.append((post_id, text, line))
        else:
            skips.append((line, "text", SKIP_EMPTY_TEXT))
    return posts, skips


def reference_annotations(
    rows: Sequence[Sequence[str]], starts: Sequence[int]
) -> tuple[list[tuple[str, str, int]], list[tuple[int, str, str]]]:
    """Kept rows ``(post id, sentence id, line)`` and skips ``(line, field, reason)``, or ``Expected``."""
    kept, skips, seen = [], [], set()
    for (post_id, sentence_id, sentence, symptom, status, explanation), line in zip(rows, starts):
        if not post_id.strip():
            raise Expected(line, "post_id")
        if status.strip() not in VALID_STATUS:
            raise Expected(line, "status")
        if not sentence.strip():
            skips.append((line, "sentence_text", SKIP_EMPTY_SENTENCE))
            continue
        if not symptom.strip():
            skips.append((line, "DSM5_symptom", SKIP_EMPTY_SYMPTOM))
            continue
        key = (post_id.strip(), sentence_id.strip(), sentence, symptom.strip(), int(float(status)), explanation)
        if key in seen:
            skips.append((line, "sentence_id", SKIP_DUPLICATE_ROW))
            continue
        seen.add(key)
        kept.append((post_id.strip(), sentence_id.strip(), line))
    return kept, skips


def assert_matches(outcome: Any, expected: Callable[[], Any], path: Path, data: bytes) -> Any:
    """Compare a reader's outcome with the reference's: the same error location, or the same result."""
    try:
        want = expected()
    except Expected as verdict:
        assert isinstance(outcome, DataError), f"expected DataError at line {verdict.line}, column {verdict.column}; got {outcome!r}"
        assert (outcome.file, outcome.line, outcome.column) == (str(path), verdict.line, verdict.column), outcome
        assert_clear_error(outcome, {str(path): data})
        return None
    assert not isinstance(outcome, DataError), f"unexpected {outcome}"
    return want


annotation_rows = st.lists(
    st.tuples(post_ids, st.sampled_from(["s_1_0", "s_1_1", " s_1_0 ", ""]), texts, symptoms, statuses, texts), min_size=1, max_size=6
)


@given(st.lists(st.tuples(post_ids, texts), min_size=1, max_size=6), csv_layout())
def test_posts_csv_follows_the_rules_row_by_row(rows: list[tuple[str, str]], layout: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "posts.csv"
        data, starts = write_csv(path, POST_HEADER, rows, layout)
        outcome = run_reader(lambda: read_posts(path))
        want = assert_matches(outcome, lambda: reference_posts(rows, starts), path, data)
        if want is not None:
            posts, skips = outcome
            assert [(p.post_id, p.text, p.line) for p in posts] == want[0]
            assert [(s.line, s.field, s.reason) for s in skips] == want[1]
            assert_skips_located(skips, {str(path): data})
            # keep_empty (prediction input): the same rows, the empty ones returned as posts instead of skips.
            kept, no_skips = read_posts(path, keep_empty=True)
            assert [p.line for p in kept] == sorted([line for *_, line in want[0]] + [line for line, *_ in want[1]]) and no_skips == ()


@given(annotation_rows, st.none() | st.integers(0, 5), csv_layout(), st.booleans())
def test_annotations_csv_follows_the_rules_row_by_row(
    rows: list[tuple[str, ...]], duplicate: int | None, layout: dict[str, Any], with_explanation: bool
) -> None:
    if duplicate is not None:
        rows = [*rows, rows[duplicate % len(rows)]]
    header = ANNOTATION_HEADER if with_explanation else ANNOTATION_HEADER[:-1]
    written = rows if with_explanation else [r[:-1] for r in rows]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "annotations.csv"
        data, starts = write_csv(path, header, written, layout)
        outcome = run_reader(lambda: read_annotations(path))
        reference_rows = rows if with_explanation else [(*r[:-1], "") for r in rows]
        want = assert_matches(outcome, lambda: reference_annotations(reference_rows, starts), path, data)
        if want is not None:
            annotations, skips = outcome
            assert [(a.post_id, a.sentence_id, a.line) for a in annotations] == want[0]
            assert [(s.line, s.field, s.reason) for s in skips] == want[1]
            assert_skips_located(skips, {str(path): data})


@given(
    st.lists(
        st.tuples(st.integers(0, 8).map(lambda i: f"p{i}"), st.sampled_from(["", "  ", "I feel low.", HUGE_POST])),
        max_size=6,
        unique_by=lambda r: r[0],
    ),
    st.lists(st.tuples(st.integers(0, 10).map(lambda i: f"p{i}"), st.sampled_from(["I feel low.", "word1 word2"])), min_size=1, max_size=8),
)
def test_corpus_accounts_for_every_annotation_row(posts: list[tuple[str, str]], annotations: list[tuple[str, str]]) -> None:
    """Annotations of missing or skipped posts are counted skips with file, line and field; none vanish."""
    posts = posts or [("p0", "I feel low.")]
    rows = [(pid, f"s_{i}", sentence, "FATIGUE", "1", "") for i, (pid, sentence) in enumerate(annotations)]
    with tempfile.TemporaryDirectory() as tmp:
        layout = {"terminator": "\n", "quote_all": False, "bom": False, "blank_after": set(), "shout_header": False, "extra_column": False}
        posts_data, _ = write_csv(Path(tmp) / "posts.csv", POST_HEADER, posts, layout)
        annotations_data, starts = write_csv(Path(tmp) / "annotations.csv", ANNOTATION_HEADER, rows, layout)
        corpus = run_reader(lambda: read_corpus(DataSettings(data_dir=tmp)))
        assert not isinstance(corpus, DataError), corpus
        files = {corpus.posts_path: posts_data, corpus.annotations_path: annotations_data}
        assert_skips_located(corpus.skips, files)
        kept_ids = {pid for pid, text in posts if text.strip()}
        skipped_ids = {pid for pid, text in posts if not text.strip()}
        annotation_skips = {s.line: s for s in corpus.skips if s.file == corpus.annotations_path}
        assert len(corpus.annotations) + len(annotation_skips) == len(rows)  # every row accounted for once
        for (pid, *_), line in zip(rows, starts):
            if pid in kept_ids:
                assert any(a.line == line for a in corpus.annotations)
            else:
                reason = SKIP_SKIPPED_POST if pid in skipped_ids else SKIP_UNKNOWN_POST
                assert (annotation_skips[line].field, annotation_skips[line].reason) == ("post_id", reason)


# --- JSONL posts: objects, non-objects, bad JSON, wrong types ------------------------------------------------

LONE_SURROGATE = "broken \ud800 text"  # json allows the escape \ud800; UTF-8 cannot encode the result
json_ids = st.one_of(
    post_ids,
    st.integers(-5, 10**30),
    st.floats(),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.just({"id": 1}),
    st.just(LONE_SURROGATE),
)
json_texts = st.one_of(
    texts, st.integers(), st.none(), st.just(["a list"]), st.just(LONE_SURROGATE), st.sampled_from(["x\u2029y", "x\x1cy"])
)
BAD_JSON_LINES = [
    '{"post_id": "a", "text": }',
    "{'post_id': 'a', 'text': 'single quotes'}",
    '{"post_id": "a", "text": "trailing comma",}',
    '{"post_id": "a", "text": "unterminated',
    '{"post_id": "a" "text": "no comma"}',
    "post_id,text",
    "[" * 5000 + "]" * 5000,  # nesting past Python's recursion limit
    '{"post_id": 1' + "0" * 5000 + ', "text": "a 5001-digit id"}',  # past int's digit limit
]
NOT_OBJECTS = ['["p1", "text"]', '"just a string"', "42", "null", "true", "[]"]
BLANK = object()  # a blank line's value (None is the value of the line "null")


@st.composite
def jsonl_line(draw: st.DrawFn) -> tuple[str, Any]:
    """One line of a posts.jsonl file, and the Python value it holds (``...`` for a line that is not JSON)."""
    kind = draw(st.sampled_from(["object", "object", "object", "missing", "not_object", "bad_json", "blank"]))
    if kind == "blank":
        return draw(st.sampled_from(["", "  ", "\t"])), BLANK
    if kind == "bad_json":
        return draw(st.sampled_from(BAD_JSON_LINES)), ...
    if kind == "not_object":
        raw = draw(st.sampled_from(NOT_OBJECTS))
        return raw, json.loads(raw)
    value: dict[str, Any] = {"post_id": draw(json_ids), "text": draw(json_texts)}
    if draw(st.booleans()):
        value["title"] = "extra keys are ignored"
    if kind == "missing":
        del value[draw(st.sampled_from(["post_id", "text"]))]
    has_surrogate = any(isinstance(v, str) and re.search("[\ud800-\udfff]", v) for v in value.values())
    # ensure_ascii=False leaves U+2028, U+0085 and friends raw in the line; a surrogate must stay escaped.
    return json.dumps(value, ensure_ascii=draw(st.booleans()) or has_surrogate), value


def reference_jsonl(values: Sequence[Any]) -> tuple[list[tuple[str, str, int]], list[tuple[int, str, str]]]:
    """Posts and skips the documented JSONL rules give, or ``Expected`` for the first bad line."""
    posts, skips, first = [], [], {}
    for line, value in enumerate(values, start=1):
        if value is BLANK:
            continue
        if value is ... or not isinstance(value, dict):
            raise Expected(line, "")
        record = {}
        for name in POST_HEADER:
            if name not in value:
                raise Expected(line, name)
            field = value[name]
            if isinstance(field, bool) or not isinstance(field, str | int):
                raise Expected(line, name)
            if isinstance(field, str) and re.search("[\ud800-\udfff]", field):
                raise Expected(line, name)
            record[name] = str(field)
        post_id = record["post_id"].strip()
        if not post_id or post_id in first:
            raise Expected(line, "post_id")
        first[post_id] = line
        if record["text"].strip():
            posts.append((post_id, record["text"], line))
        else:
            skips.append((line, "text", SKIP_EMPTY_TEXT))
    return posts, skips


@given(st.lists(jsonl_line(), min_size=1, max_size=6), st.sampled_from(["\n", "\r\n"]), st.booleans())
@example([('{"post_id": "a", "text": "x\u2028y"}', {"post_id": "a", "text": "x\u2028y"})], "\n", False)
@example([('{"post_id": "a", "text": "x\x85y"}', {"post_id": "a", "text": "x\x85y"}), ('{"post_id": "b"}', {"post_id": "b"})], "\n", False)
@example([(BAD_JSON_LINES[-2], ...)], "\n", False)
@example([(BAD_JSON_LINES[-1], ...)], "\n", False)
@example([('{"post_id": "a", "text": "broken \\ud800 text"}', {"post_id": "a", "text": LONE_SURROGATE})], "\n", False)
def test_posts_jsonl_follows_the_rules_line_by_line(lines: list[tuple[str, Any]], terminator: str, bom: bool) -> None:
    data = (BOM if bom else b"") + terminator.join(raw for raw, _ in lines).encode("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "posts.jsonl"
        path.write_bytes(data)
        outcome = run_reader(lambda: read_posts(path))
        values = [value for _, value in lines]
        if isinstance(outcome, DataError) and not data.strip(b"\xef\xbb\xbf \t\r\n"):
            assert "empty" in outcome.message  # a file of blank lines
            return
        try:
            want = reference_jsonl(values)
        except Expected as verdict:
            assert isinstance(outcome, DataError), f"expected DataError at line {verdict.line}; got {outcome!r}"
            assert outcome.line == verdict.line, outcome
            if verdict.column or outcome.column:  # a syntax error names its character, "char N"
                assert outcome.column == verdict.column or (values[verdict.line - 1] is ... and outcome.column.startswith("char ")), outcome
            assert_clear_error(outcome, {str(path): data})
            return
        assert not isinstance(outcome, DataError), f"unexpected {outcome}"
        posts, skips = outcome
        assert [(p.post_id, p.text, p.line) for p in posts] == want[0]
        assert [(s.line, s.field, s.reason) for s in skips] == want[1]


# --- corrupted bytes and structure ----------------------------------------------------------------------------


def _insert(data: bytes, at: int, piece: bytes) -> bytes:
    at %= len(data) + 1
    return data[:at] + piece + data[at:]


def _drop_header_column(data: bytes, at: int) -> bytes:
    head, sep, rest = data.partition(b"\n")
    names = head.split(b",")
    del names[at % len(names)]
    return b",".join(names) + sep + rest


def _row_fields(data: bytes, at: int, change: Callable[[bytes], bytes]) -> bytes:
    lines = data.split(b"\n")
    i = 1 + at % max(1, len(lines) - 1) if len(lines) > 1 else 0
    lines[i] = change(lines[i])
    return b"\n".join(lines)


def _recode(data: bytes, codec: str) -> bytes:
    return data.decode("utf-8", errors="replace").encode(codec, errors="replace")


MUTATIONS: dict[str, Callable[[bytes, int, bytes], bytes]] = {
    "truncate": lambda d, at, _: d[: at % (len(d) + 1)],
    "invalid_utf8": lambda d, at, piece: _insert(d, at, piece or b"\xff"),
    "stray_quote": lambda d, at, _: _insert(d, at, b'"'),
    "nul": lambda d, at, _: _insert(d, at, b"\x00"),
    "random_bytes": _insert,
    "newline": lambda d, at, _: _insert(d, at, b"\n"),
    "drop_header_column": lambda d, at, _: _drop_header_column(d, at),
    "extra_field": lambda d, at, _: _row_fields(d, at, lambda line: line.rstrip(b"\r") + b",extra"),
    "missing_field": lambda d, at, _: _row_fields(d, at, lambda line: line.rpartition(b",")[0]),
    "duplicate_line": lambda d, at, _: _row_fields(d, at, lambda line: line + b"\n" + line),
    "blank_lines_first": lambda d, at, _: b"\n" * (1 + at % 3) + d,
    "crlf": lambda d, at, _: d.replace(b"\n", b"\r\n"),
    "cr_only": lambda d, at, _: d.replace(b"\n", b"\r"),
    "bom": lambda d, at, _: BOM + d,
    "double_bom": lambda d, at, _: BOM + BOM + d,
    "utf16": lambda d, at, _: _recode(d, "utf-16"),
    "latin1": lambda d, at, _: _recode(d, "latin-1"),
    "header_only": lambda d, at, _: d.partition(b"\n")[0] + b"\n",
    "empty": lambda d, at, _: b"",
    "whitespace_only": lambda d, at, _: b"  \r\n\t\n",
}
mutation = st.tuples(
    st.sampled_from(sorted(MUTATIONS)),
    st.integers(0, 10**6),
    st.sampled_from([b"", b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80"]) | st.binary(max_size=6),
)


def mutate(data: bytes, mutations: Sequence[tuple[str, int, bytes]]) -> bytes:
    for name, at, piece in mutations:
        data = MUTATIONS[name](data, at, piece)
    return data


@given(
    st.lists(st.tuples(post_ids, texts), min_size=1, max_size=5),
    annotation_rows,
    st.sampled_from(["posts.csv", "posts.jsonl"]),
    st.lists(mutation, max_size=3),
    st.lists(mutation, max_size=3),
)
@example([("p1", "hello")], [("p1", "s1", "hello", "FATIGUE", "1", "")], "posts.csv", [("utf16", 0, b"")], [("double_bom", 0, b"")])
@example([("p1", "a")], [("p1", "s1", "a", "FATIGUE", "1", "")], "posts.csv", [("blank_lines_first", 1, b"")], [("missing_field", 0, b"")])
@example(
    [("p1", HUGE_POST)], [("p1", "s1", "a", "FATIGUE", "1", "")], "posts.jsonl", [("truncate", 400_000, b"")], [("stray_quote", 60, b"")]
)
def test_corrupted_files_end_in_a_clear_error_or_counted_skips(
    posts: list[tuple[str, str]],
    annotations: list[tuple[str, ...]],
    posts_name: str,
    posts_mutations: list[tuple[str, int, bytes]],
    annotation_mutations: list[tuple[str, int, bytes]],
) -> None:
    if posts_name.endswith(".jsonl"):
        posts_data = "\n".join(json.dumps({"post_id": p, "text": t}, ensure_ascii=False) for p, t in posts).encode("utf-8")
    else:
        posts_data = csv_text(POST_HEADER, posts, terminator="\n", quote_all=False, blank_after=set())[0].encode("utf-8")
    annotations_data = csv_text(ANNOTATION_HEADER, annotations, terminator="\n", quote_all=False, blank_after=set())[0].encode("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        posts_path, annotations_path = Path(tmp) / posts_name, Path(tmp) / "annotations.csv"
        files = {
            str(posts_path): mutate(posts_data, posts_mutations),
            str(annotations_path): mutate(annotations_data, annotation_mutations),
        }
        for name, data in files.items():
            Path(name).write_bytes(data)

        outcome = run_reader(lambda: read_posts(posts_path))
        if isinstance(outcome, DataError):
            assert_clear_error(outcome, files)
        else:
            assert_posts_sane(outcome[0])
            assert_skips_located(outcome[1], files)

        outcome = run_reader(lambda: read_annotations(annotations_path))
        if isinstance(outcome, DataError):
            assert_clear_error(outcome, files)
        else:
            assert_annotations_sane(outcome[0])
            assert_skips_located(outcome[1], files)

        corpus = run_reader(lambda: read_corpus(DataSettings(data_dir=tmp)))
        if isinstance(corpus, DataError):
            assert_clear_error(corpus, files)
        else:
            assert_posts_sane(corpus.posts)
            assert_annotations_sane(corpus.annotations)
            assert_skips_located(corpus.skips, files)
            known = {p.post_id for p in corpus.posts}
            assert all(a.post_id in known for a in corpus.annotations)


# --- specific cases (each once failed or is named in the issue) -------------------------------------------------


@pytest.mark.parametrize("name", ["posts.csv", "posts.jsonl"])
def test_a_post_of_100000_words_is_read_whole_and_fast(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text(json.dumps({"post_id": "big", "text": HUGE_POST}) + "\n", encoding="utf-8")
    else:
        path.write_text(
            csv_text(POST_HEADER, [("big", HUGE_POST)], terminator="\n", quote_all=False, blank_after=set())[0], encoding="utf-8"
        )
    start = time.monotonic()
    posts, skips = read_posts(path)
    assert time.monotonic() - start < 2.0
    assert len(posts[0].text.split()) == 100_000 and skips == ()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        # 5,000 levels parse on Python 3.12.3 and 3.13; 100,000 exceed every version's recursion limit.
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"post_id": 1' + "0" * 5000 + ', "text": "x"}', "digits"),
    ],
    ids=["deep-nesting", "huge-integer"],
)
def test_jsonl_that_python_json_cannot_hold_is_a_data_error(tmp_path: Path, line: str, message: str) -> None:
    """json raises RecursionError / a plain ValueError for these, not JSONDecodeError."""
    path = tmp_path / "posts.jsonl"
    path.write_text('{"post_id": "a", "text": "fine"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=message) as excinfo:
        read_posts(path)
    assert excinfo.value.line == 2


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_jsonl_lines_end_only_at_newline(tmp_path: Path, separator: str) -> None:
    """Raw U+2028 and friends are legal inside JSON strings; str.splitlines() would cut the line there."""
    path = tmp_path / "posts.jsonl"
    path.write_text(json.dumps({"post_id": "a", "text": f"x{separator}y"}, ensure_ascii=False) + '\n{"post_id": "b"}\n', encoding="utf-8")
    with pytest.raises(DataError) as excinfo:
        read_posts(path)
    assert (excinfo.value.line, excinfo.value.column) == (2, "text")
    path.write_text(json.dumps({"post_id": "a", "text": f"x{separator}y"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_posts(path)[0][0].text == f"x{separator}y"


def test_jsonl_lone_surrogate_is_a_data_error(tmp_path: Path) -> None:
    """A lone surrogate cannot be written back as UTF-8 (reports, predictions), so it is refused here."""
    path = tmp_path / "posts.jsonl"
    path.write_text('{"post_id": "a", "text": "bad \\udc80 char"}\n', encoding="utf-8")
    with pytest.raises(DataError) as excinfo:
        read_posts(path)
    assert (excinfo.value.line, excinfo.value.column) == (1, "text")
    assert "surrogate" in str(excinfo.value)


def test_blank_lines_before_the_header_are_not_the_header(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    path.write_text("\n\r\npost_id,text\np1,hello\n", encoding="utf-8")
    posts, _ = read_posts(path)
    assert [(p.post_id, p.line) for p in posts] == [("p1", 4)]


def test_csv_of_blank_records_only_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    path.write_text(',,\n"",""\n', encoding="utf-8")
    with pytest.raises(DataError, match="header") as excinfo:
        read_posts(path)
    assert excinfo.value.line == 1


def test_duplicate_annotation_row_skip_names_a_field(tmp_path: Path) -> None:
    path = tmp_path / "annotations.csv"
    row = "p1,s_1_0,I feel low.,DEPRESSED_MOOD,1,why\n"
    path.write_text(",".join(ANNOTATION_HEADER) + "\n" + row + row, encoding="utf-8")
    _, skips = read_annotations(path)
    assert [(s.line, s.field, s.reason) for s in skips] == [(3, "sentence_id", SKIP_DUPLICATE_ROW)]
