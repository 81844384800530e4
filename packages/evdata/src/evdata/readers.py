"""Readers for ReDSM5-format files: posts (CSV or JSONL) and annotations (CSV).

Bad input is either an error naming file, line and column (``DataError``) or a counted ``Skip``
that ends up in ``Corpus.skips`` and in the printed summary; nothing is dropped silently.
Line numbers are physical file lines where a record starts (a quoted CSV field may span lines).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from evdata.records import Annotation, Corpus, Post, Skip
from evdata.settings import DataSettings

POSTS_NAMES: tuple[str, ...] = ("posts.csv", "posts.jsonl", "redsm5_posts.csv", "redsm5_posts.jsonl")
ANNOTATIONS_NAMES: tuple[str, ...] = ("annotations.csv", "redsm5_annotations.csv")

POST_COLUMNS: tuple[str, ...] = ("post_id", "text")
ANNOTATION_COLUMNS: tuple[str, ...] = ("post_id", "sentence_id", "sentence_text", "DSM5_symptom", "status")
OPTIONAL_ANNOTATION_COLUMNS: tuple[str, ...] = ("explanation",)

# Skip reasons are fixed phrases so the summary can count them; file and line locate each one.
SKIP_EMPTY_TEXT = "empty post text"
SKIP_EMPTY_SENTENCE = "empty sentence_text"
SKIP_EMPTY_SYMPTOM = "empty DSM5_symptom"
SKIP_DUPLICATE_ROW = "exact duplicate annotation row"
SKIP_UNKNOWN_POST = "annotation for unknown post"
SKIP_SKIPPED_POST = "annotation for a skipped post"

# Real posts reach ~7,000 words; the csv module's default field limit (128 KiB) is too close for comfort.
_FIELD_SIZE_LIMIT = 64 * 1024 * 1024


class DataError(ValueError):
    """Bad input data: names the file, the line (1-based, 0 when not about a line) and the column."""

    def __init__(self, file: str | Path, line: int, column: str, message: str) -> None:
        self.file = str(file)
        self.line = line
        self.column = column
        self.message = message
        where = self.file
        if line:
            where += f", line {line}"
        if column:
            where += f", column {column}"
        super().__init__(f"{where}: {message}")


def _decode(path: Path) -> str:
    """Read ``path`` as UTF-8 (a BOM is dropped); undecodable bytes are an error at their line and column."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, 0, "", "file not found") from None
    except IsADirectoryError:
        raise DataError(path, 0, "", "is a directory, expected a file") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        column = exc.start - line_start + 1
        raise DataError(path, line, f"byte {column}", f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8") from None


@contextmanager
def _large_fields() -> Iterator[None]:
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, _FIELD_SIZE_LIMIT))
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _csv_records(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> list[tuple[int, dict[str, str]]]:
    """``(start line, {column: value})`` for each CSV record, after checking the header and field counts.

    Header names are matched ignoring surrounding spaces and case; extra columns are ignored.
    """
    text = _decode(path)
    if not text.strip():
        raise DataError(path, 1, "", "file is empty (expected a header line naming the columns)")
    # newline="" keeps line endings inside quoted fields intact, as the csv module requires.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, dict[str, str]]] = []
    start = 1
    with _large_fields():
        try:
            # Blank lines above the header (common in hand-edited files) are not the header.
            header: list[str] | None = None
            for row in reader:
                if any(cell.strip() for cell in row):
                    header = row
                    break
                start = reader.line_num + 1
            if header is None:
                raise DataError(path, 1, "", "no header line: every line is blank or holds only empty fields")
            header_end = reader.line_num
            wanted = {name.lower(): name for name in (*required, *optional)}
            index: dict[str, int] = {}
            for i, raw in enumerate(header):
                key = raw.strip().lower()
                if key in wanted and wanted[key] not in index:
                    index[wanted[key]] = i
            for name in required:
                if name not in index:
                    found = ", ".join(repr(h.strip()) for h in header)
                    raise DataError(path, header_end, name, f"missing column {name!r} (header has: {found})")
            start = header_end + 1
            for row in reader:
                # reader.line_num is the last physical line of the record just read.
                record_start, start = start, reader.line_num + 1
                if not row or (len(row) == 1 and not row[0].strip() and len(header) > 1):
                    continue  # blank line: not a record
                if len(row) != len(header):
                    column = header[len(row)].strip() if len(row) < len(header) else f"field {len(header) + 1}"
                    raise DataError(path, record_start, column, f"record has {len(row)} fields, the header has {len(header)}")
                records.append((record_start, {name: row[i] for name, i in index.items()}))
        except csv.Error as exc:
            raise DataError(path, start, "", f"malformed CSV: {exc}") from None
    if not records:
        raise DataError(path, header_end + 1, "", "file is empty: it has a header but no records")
    return records


def _jsonl_records(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line, {field: value})`` for each JSON object line; blank lines are allowed."""
    text = _decode(path)
    if not text.strip():
        raise DataError(path, 1, "", "file is empty (expected one JSON object per line)")
    # Only LF ends a JSONL line: str.splitlines() would also cut at U+2028, U+0085 and other
    # characters that JSON strings may hold raw (a CR before the LF is JSON whitespace).
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(path, number, f"char {exc.colno}", f"not valid JSON: {exc.msg}") from None
        except RecursionError:
            raise DataError(path, number, "", "not valid JSON here: arrays or objects nested too deeply to read") from None
        except ValueError as exc:  # a number past Python's digit limit for int
            raise DataError(path, number, "", f"not valid JSON here: {str(exc).split(';')[0]}") from None
        if not isinstance(value, dict):
            raise DataError(path, number, "", f"expected a JSON object with {', '.join(required)}, got {type(value).__name__}")
        record: dict[str, str] = {}
        for name in required:
            if name not in value:
                raise DataError(path, number, name, f"missing field {name!r}")
            field = value[name]
            if isinstance(field, bool) or not isinstance(field, str | int):
                raise DataError(path, number, name, f"expected a string, got {type(field).__name__}")
            if isinstance(field, str):
                _check_encodable(path, number, name, field)
            record[name] = str(field)
        yield number, record


def _check_encodable(path: Path, line: int, name: str, value: str) -> None:
    """Refuse a lone surrogate (JSON allows the escape ``\\ud800``): reports and predictions could not be written as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError(
            path, line, name, f"holds an unpaired surrogate \\u{ord(value[exc.start]):04x} at character {exc.start + 1}; not valid text"
        ) from None


def _read_table(path: Path, required: tuple[str, ...]) -> Iterable[tuple[int, dict[str, str]]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv_records(path, required)
    if suffix in (".jsonl", ".ndjson"):
        return _jsonl_records(path, required)
    raise DataError(path, 0, "", f"unsupported file type {suffix or '(none)'!r}: expected .csv or .jsonl")


def read_posts(path: str | Path, *, keep_empty: bool = False) -> tuple[tuple[Post, ...], tuple[Skip, ...]]:
    """Read posts (``post_id,text``) from a CSV or JSONL file, chosen by suffix.

    Errors: missing column, empty file, empty or duplicate ``post_id`` (both lines named).
    Skipped and counted: posts whose text is empty or only whitespace; with ``keep_empty`` they are
    returned as posts instead (prediction answers every post it was given, empty ones included).
    """
    posts, skips, _ = _read_posts(Path(path), keep_empty=keep_empty)
    return posts, skips


def _read_posts(path: Path, *, keep_empty: bool = False) -> tuple[tuple[Post, ...], tuple[Skip, ...], set[str]]:
    """``read_posts`` plus the ids of the skipped posts (so their annotations get the right skip reason)."""
    posts: list[Post] = []
    skips: list[Skip] = []
    skipped_ids: set[str] = set()
    first_line: dict[str, int] = {}
    for line, record in _read_table(path, POST_COLUMNS):
        post_id = record["post_id"].strip()
        if not post_id:
            raise DataError(path, line, "post_id", "empty post_id")
        if post_id in first_line:
            raise DataError(path, line, "post_id", f"duplicate post_id {post_id!r} (lines {first_line[post_id]} and {line})")
        first_line[post_id] = line
        if not record["text"].strip() and not keep_empty:
            skips.append(Skip(str(path), line, "text", SKIP_EMPTY_TEXT))
            skipped_ids.add(post_id)
            continue
        posts.append(Post(post_id=post_id, text=record["text"], line=line))
    return tuple(posts), tuple(skips), skipped_ids


def _parse_status(path: Path, line: int, raw: str) -> int:
    value = raw.strip()
    # Spreadsheet exports sometimes write 1.0; anything else is a labelling mistake worth stopping for.
    if value in ("0", "1", "0.0", "1.0"):
        return int(float(value))
    raise DataError(path, line, "status", f"status must be 0 or 1, got {raw!r}")


def read_annotations(path: str | Path) -> tuple[tuple[Annotation, ...], tuple[Skip, ...]]:
    """Read annotation rows (``post_id,sentence_id,sentence_text,DSM5_symptom,status[,explanation]``).

    Errors: missing column, empty file, empty ``post_id``, status other than 0/1.
    Skipped and counted: empty ``sentence_text``, empty ``DSM5_symptom``, exact duplicate rows.
    Symptoms outside the nine of DSM-5 (e.g. ``SPECIAL_CASE``) are kept.
    """
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise DataError(path, 0, "", f"unsupported file type {path.suffix or '(none)'!r}: annotations must be .csv")
    annotations: list[Annotation] = []
    skips: list[Skip] = []
    seen: set[tuple[str, ...]] = set()
    for line, record in _csv_records(path, ANNOTATION_COLUMNS, OPTIONAL_ANNOTATION_COLUMNS):
        post_id = record["post_id"].strip()
        if not post_id:
            raise DataError(path, line, "post_id", "empty post_id")
        status = _parse_status(path, line, record["status"])
        if not record["sentence_text"].strip():
            skips.append(Skip(str(path), line, "sentence_text", SKIP_EMPTY_SENTENCE))
            continue
        symptom = record["DSM5_symptom"].strip()
        if not symptom:
            skips.append(Skip(str(path), line, "DSM5_symptom", SKIP_EMPTY_SYMPTOM))
            continue
        key = (post_id, record["sentence_id"].strip(), record["sentence_text"], symptom, str(status), record.get("explanation", ""))
        if key in seen:
            # sentence_id is the column that identifies an annotation row to the annotator.
            skips.append(Skip(str(path), line, "sentence_id", SKIP_DUPLICATE_ROW))
            continue
        seen.add(key)
        annotations.append(
            Annotation(
                post_id=post_id,
                sentence_id=record["sentence_id"].strip(),
                sentence_text=record["sentence_text"],
                symptom=symptom,
                status=status,
                explanation=record.get("explanation", ""),
                line=line,
            )
        )
    return tuple(annotations), tuple(skips)


def _find_one(data_dir: Path, names: tuple[str, ...], what: str) -> Path:
    found = [data_dir / name for name in names if (data_dir / name).is_file()]
    if not found:
        raise DataError(data_dir, 0, "", f"no {what} file found; looked for {', '.join(names)}")
    if len(found) > 1:
        raise DataError(
            data_dir, 0, "", f"more than one {what} file: {', '.join(p.name for p in found)}; keep one or set the file explicitly"
        )
    return found[0]


def find_data_files(data_dir: str | Path) -> tuple[Path, Path]:
    """Find ``(posts file, annotations file)`` in ``data_dir`` under their accepted ReDSM5 names."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(data_dir, 0, "", "data directory not found")
    return _find_one(data_dir, POSTS_NAMES, "posts"), _find_one(data_dir, ANNOTATIONS_NAMES, "annotations")


def demo_data_dir() -> Path:
    """Folder of the bundled synthetic demo corpus (package data)."""
    return Path(str(resources.files("evdata").joinpath("demo", "data")))


def _resolve_files(settings: DataSettings) -> tuple[Path, Path, bool]:
    explicit_posts = Path(settings.posts_file) if settings.posts_file else None
    explicit_annotations = Path(settings.annotations_file) if settings.annotations_file else None
    if settings.data_dir:
        found_posts: Path | None = None
        found_annotations: Path | None = None
        if explicit_posts is None or explicit_annotations is None:
            data_dir = Path(settings.data_dir)
            if not data_dir.is_dir():
                raise DataError(data_dir, 0, "", "data directory not found (data.data_dir)")
            if explicit_posts is None:
                found_posts = _find_one(data_dir, POSTS_NAMES, "posts")
            if explicit_annotations is None:
                found_annotations = _find_one(data_dir, ANNOTATIONS_NAMES, "annotations")
        posts = explicit_posts or found_posts
        annotations = explicit_annotations or found_annotations
        assert posts is not None and annotations is not None
        return posts, annotations, False
    if explicit_posts and explicit_annotations:
        return explicit_posts, explicit_annotations, False
    if explicit_posts or explicit_annotations:
        given = "data.posts_file" if explicit_posts else "data.annotations_file"
        missing = "data.annotations_file" if explicit_posts else "data.posts_file"
        raise DataError(
            settings.posts_file or settings.annotations_file, 0, "", f"{given} is set but {missing} and data.data_dir are not; set one"
        )
    demo = demo_data_dir()
    return demo / "posts.csv", demo / "annotations.csv", True


def read_corpus(settings: DataSettings) -> Corpus:
    """Read posts and annotations as ``settings`` say; no data_dir and no files -> the bundled synthetic demo.

    Annotations for posts that are not in the posts file (or whose post was skipped) are skipped and
    counted here, since only the pair of files knows.
    """
    posts_path, annotations_path, synthetic = _resolve_files(settings)
    posts, post_skips, skipped_posts = _read_posts(posts_path)
    annotations, annotation_skips = read_annotations(annotations_path)
    known = {post.post_id for post in posts}
    kept: list[Annotation] = []
    skips = list(post_skips) + list(annotation_skips)
    for annotation in annotations:
        if annotation.post_id in known:
            kept.append(annotation)
        else:
            reason = SKIP_SKIPPED_POST if annotation.post_id in skipped_posts else SKIP_UNKNOWN_POST
            skips.append(Skip(str(annotations_path), annotation.line, "post_id", reason))
    return Corpus(
        posts=posts,
        annotations=tuple(kept),
        skips=tuple(sorted(skips, key=lambda s: (s.file != str(posts_path), s.line))),
        posts_path=str(posts_path),
        annotations_path=str(annotations_path),
        synthetic=synthetic,
    )
