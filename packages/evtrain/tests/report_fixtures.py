"""The report tests' helpers: a hand-made run directory, and a reader that parses a page back.

``write_sample_run`` needs no trained model; its posts hold the hard cases for a web page
(``<script>``, HTML entities, emoji, right-to-left text, a long post) and its predictions cover every
outcome, including spans that overlap gold evidence only in part. ``parse_report`` reads a page
(or a browser's dump of it) back into post texts and the offsets each example's marks cover, so
tests compare highlights with the predictions' offsets instead of trusting the renderer.
"""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser
from pathlib import Path

import attrs

from evdata.atomic import atomic_write_text
from evdata.config import write_record
from evdata.records import symptom_question
from evdata.settings import DataSettings
from evtrain.metrics import best_over_golds
from evtrain.records import Best, HistoryRow, PredictionRecord, RunMetrics, Scores, SplitEvaluation, write_metrics
from evtrain.runs import RunPaths
from evtrain.settings import RunSettings

HOSTILE_SCRIPT = "<script>document.body.setAttribute('data-pwned', 'yes')</script>"
HOSTILE_IMG = '<img src="x" onerror="document.title=\'pwned\'">'

_FILLER = (
    "Work was the same as always and I kept my head down through the meetings. "
    "My sister called about the holidays and we talked about plans for a while. "
    "The weather turned cold this week, and the bus was late again on Tuesday. "
)

# post_id -> text. Evidence sentences are quoted again in _EXAMPLES, so offsets come from the text.
POSTS: dict[str, str] = {
    "p1": (
        "I don't know why I'm posting this. I feel empty and sad almost every day now. "
        "Nothing I used to enjoy does anything for me anymore, not even music. "
        "I sleep maybe four hours a night and then stare at the ceiling."
    ),
    "p2": (
        f"Quick test of the forum: {HOSTILE_SCRIPT} and {HOSTILE_IMG} &amp; &lt;b&gt;not bold&lt;/b&gt;.\n"
        "I feel like a burden to everyone around me 😞🙃 and I can't shake it.\n"
        "אני מרגיש ריק מבפנים כל הזמן. لا أستطيع النوم في الليل."
    ),
    "p3": (
        "Long story, sorry. "
        + _FILLER * 14
        + "Honestly I'm exhausted all the time, even after a full night in bed. "
        + _FILLER * 6
        + "Anyway, thanks for reading."
    ).strip(),
    "p4": (
        "I keep forgetting what I was about to say in the middle of a sentence. "
        "Some days I can't decide what to eat, so I just don't eat at all. "
        "It has been like this since spring."
    ),
}

# (post_id, symptom, gold evidence substrings, predicted substring or None, score, explanation)
_EXAMPLES: tuple[tuple[str, str, tuple[str, ...], str | None, float | None, str], ...] = (
    (
        "p1",
        "DEPRESSED_MOOD",
        ("I feel empty and sad almost every day now.",),
        "I feel empty and sad almost every day now.",
        7.25,
        "Persistent sadness and emptiness, nearly every day.",
    ),
    (
        "p1",
        "ANHEDONIA",
        ("Nothing I used to enjoy does anything for me anymore, not even music.",),
        "Nothing I used to enjoy",
        5.5,
        "Loss of pleasure in former interests.",
    ),
    (
        "p1",
        "SLEEP_ISSUES",
        ("I sleep maybe four hours a night and then stare at the ceiling.",),
        "sad almost every day now. Nothing",
        1.75,
        "Insomnia: about four hours of sleep.",
    ),
    (
        "p2",
        "WORTHLESSNESS",
        ("I feel like a burden to everyone around me 😞🙃 and I can't shake it.",),
        "burden to everyone around me 😞🙃",
        4.0,
        'Feels like a "burden" <b>to others</b> & guilty.',
    ),
    (
        "p2",
        "DEPRESSED_MOOD",
        ("אני מרגיש ריק מבפנים כל הזמן.",),
        "אני מרגיש ריק מבפנים כל הזמן.",
        6.5,
        "Hebrew: 'I feel empty inside all the time.'",
    ),
    ("p2", "SLEEP_ISSUES", ("لا أستطيع النوم في الليل.",), None, None, "Arabic: 'I cannot sleep at night.'"),
    (
        "p3",
        "FATIGUE",
        ("Honestly I'm exhausted all the time, even after a full night in bed.",),
        "My sister called about the holidays and we talked about plans for a while.",
        2.5,
        "Constant exhaustion despite rest.",
    ),
    (
        "p4",
        "COGNITIVE_ISSUES",
        ("I keep forgetting what I was about to say in the middle of a sentence.",),
        "I keep forgetting what I was about to say",
        3.0,
        "Memory lapses mid-sentence.",
    ),
    (
        "p4",
        "APPETITE_CHANGE",
        ("Some days I can't decide what to eat, so I just don't eat at all.",),
        "Some days I can't decide what to eat, so I just don't eat at all.",
        6.0,
        "Skips meals entirely.",
    ),
)


def _span(text: str, piece: str) -> tuple[int, int]:
    start = text.index(piece)
    return start, start + len(piece)


def prediction_records() -> list[PredictionRecord]:
    """The sample's ``predictions/test.json`` records, as evaluation writes them."""
    records = []
    for post_id, symptom, golds, predicted, score, _ in _EXAMPLES:
        text = POSTS[post_id]
        start, end = _span(text, predicted) if predicted else (0, 0)
        prediction = text[start:end]
        em, f1 = best_over_golds(prediction, list(golds))
        records.append(
            PredictionRecord(
                example_id=f"{post_id}::{symptom}",
                post_id=post_id,
                question=symptom_question(symptom),
                symptom=symptom,
                prediction_text=prediction,
                start=start,
                end=end,
                score=score,
                gold_texts=list(golds),
                gold_spans=[_span(text, g) for g in golds],
                exact_match=em,
                f1=f1,
            )
        )
    return records


def _csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def scores_of(records: list[PredictionRecord]) -> Scores:
    """SQuAD figures (percentages) of ``records``, as evaluation computes them."""
    n = len(records)
    return Scores(exact_match=100.0 * sum(r.exact_match for r in records) / n, f1=100.0 * sum(r.f1 for r in records) / n, n=n)


def sample_metrics(run_name: str, records: list[PredictionRecord]) -> RunMetrics:
    """The sample's ``metrics.json``: four validations, the best at epoch 3, baselines on val and test."""
    n = len(records)
    history = [
        HistoryRow(
            epoch=e,
            step=40 * e,
            train_loss=loss,
            val_f1=f1,
            val_exact_match=em,
            train_seconds=61.0,
            eval_seconds=4.0,
            train_tokens_per_second=5200.0,
        )
        for e, loss, f1, em in ((1, 3.9, 31.0, 12.0), (2, 2.4, 48.5, 27.0), (3, 1.7, 55.2, 33.0), (4, 1.4, 54.8, 34.0))
    ]
    return RunMetrics(
        run=run_name,
        model="minilm",
        question_mode="symptom",
        synthetic_data=False,
        device="cpu",
        precision="bf16 autocast",
        precision_dtype="bf16",
        threads=4,
        examples={"train": 120, "val": 15, "test": n},
        windows={"train": 180, "val": 22, "test": 14},
        history=history,
        best=Best(metric="f1", value=55.2, epoch=3, step=120),
        stopped_early=False,
        optimizer_steps=160,
        train_tokens_per_second=5200.0,
        val=Scores(exact_match=33.0, f1=55.2, n=15),
        test=scores_of(records),
        baselines={
            "val": {
                "first_sentence": Scores(exact_match=6.7, f1=18.0, n=15),
                "keyword_sentence": Scores(exact_match=20.0, f1=31.0, n=15),
            },
            "test": {
                "first_sentence": Scores(exact_match=0.0, f1=14.1, n=n),
                "keyword_sentence": Scores(exact_match=22.2, f1=35.6, n=n),
            },
        },
        wall_seconds=262.0,
    )


def write_sample_run(root: str | Path, *, curves: bool = True) -> RunPaths:
    """Write the sample corpus and a finished-looking run directory under ``root``; return the run's paths.

    ``root/data`` holds posts.csv and annotations.csv; ``root/run`` is the run (settings.toml,
    metrics.json, metrics_test.json, predictions/test.json and, with ``curves``, training_curves.png),
    each record file written through its class, as training and evaluation write them.
    """
    root = Path(root)
    data = root / "data"
    atomic_write_text(data / "posts.csv", _csv([["post_id", "text"], *([post_id, text] for post_id, text in POSTS.items())]))
    rows = [["post_id", "sentence_id", "sentence_text", "DSM5_symptom", "status", "explanation"]]
    for i, (post_id, symptom, golds, _, _, why) in enumerate(_EXAMPLES):
        rows += [[post_id, f"s_{post_id}_{i}_{k}", g, symptom, "1", why] for k, g in enumerate(golds)]
    rows.append(["p4", "s_p4_9_0", "It has been like this since spring.", "DEPRESSED_MOOD", "0", "Duration only; not evidence."])
    atomic_write_text(data / "annotations.csv", _csv(rows))
    run = RunPaths(root / "run")
    settings = RunSettings(data=DataSettings(data_dir=str(data.resolve()), use_semantic=False))
    atomic_write_text(run.settings, settings.to_toml())
    records = prediction_records()
    write_record(run.split_predictions("test"), records)
    metrics = sample_metrics("sample", records)
    write_metrics(run.metrics, metrics)
    write_record(run.split_metrics("test"), SplitEvaluation(split="test", scores=scores_of(records), seconds=1.5, windows=14))
    if curves:
        from evtrain.plots import plot_training_curves

        plot_training_curves(metrics.history, run.curves, title="sample run")
    return run


@attrs.define
class ParsedPost:
    """One ``<section class="post">`` read back: its text and, per example number, the marked offsets."""

    post_id: str
    text: str = ""
    gold: dict[int, set[int]] = attrs.Factory(dict)
    pred: dict[int, set[int]] = attrs.Factory(dict)
    rows: list[dict[str, str]] = attrs.Factory(list)
    hidden: bool = False
    collapsed: bool = False
    mark_classes: list[tuple[str, str, str]] = attrs.Factory(list)
    """``(class, data-gold, data-pred)`` of every mark, in text order."""


@attrs.define
class ParsedPage:
    """What ``parse_report`` found: the posts in page order and facts about the markup."""

    posts: list[ParsedPost] = attrs.Factory(list)
    scripts: int = 0
    image_sources: list[str] = attrs.Factory(list)
    event_handlers: list[str] = attrs.Factory(list)
    body_attributes: dict[str, str] = attrs.Factory(dict)
    texts_by_id: dict[str, str] = attrs.Factory(dict)
    """Text content of the elements with an ``id`` among a few the tests look at."""


def runs(offsets: set[int]) -> list[tuple[int, int]]:
    """Sorted offsets as maximal half-open spans: ``{1, 2, 3, 7}`` -> ``[(1, 4), (7, 8)]``."""
    spans: list[tuple[int, int]] = []
    for x in sorted(offsets):
        if spans and spans[-1][1] == x:
            spans[-1] = (spans[-1][0], x + 1)
        else:
            spans.append((x, x + 1))
    return spans


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_WATCHED_IDS = {"shown-count", "no-match"}


class _ReportParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = ParsedPage()
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.post: ParsedPost | None = None
        self.in_text = 0
        self.watched: list[tuple[str, int]] = []

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs_list}
        self.page.event_handlers += [f"{tag}[{k}]" for k in a if k.startswith("on")]
        classes = a.get("class", "").split()
        if tag == "body":
            self.page.body_attributes = a
        elif tag == "script":
            self.page.scripts += 1
        elif tag == "img":
            self.page.image_sources.append(a.get("src", ""))
        elif tag == "section" and "post" in classes:
            self.post = ParsedPost(a.get("data-post", ""), hidden="hidden" in a)
            self.page.posts.append(self.post)
        elif tag == "details" and self.post is not None:
            self.post.collapsed = "open" not in a
        elif tag == "tr" and "data-example" in a and self.post is not None:
            self.post.rows.append({k: v for k, v in a.items() if k.startswith("data-") or k in ("hidden",)})
        elif tag == "span" and "m" in classes and self.post is not None:
            self.post.mark_classes.append((a.get("class", ""), a.get("data-gold", ""), a.get("data-pred", "")))
        if a.get("id") in _WATCHED_IDS:
            self.watched.append((a["id"], len(self.stack)))
            self.page.texts_by_id.setdefault(a["id"], "")
        if tag not in _VOID:
            self.stack.append((tag, a))
            if tag == "div" and "post-text" in classes:
                self.in_text += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        while self.stack:
            name, a = self.stack.pop()
            if name == "div" and "post-text" in a.get("class", "").split():
                self.in_text -= 1
            if name == "section" and "post" in a.get("class", "").split():
                self.post = None
            self.watched = [(i, depth) for i, depth in self.watched if depth < len(self.stack)]
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        for element_id, _ in self.watched:
            self.page.texts_by_id[element_id] += data
        if not self.in_text or self.post is None:
            return
        start = len(self.post.text)
        self.post.text += data
        offsets = range(start, start + len(data))
        for name, a in self.stack:
            if name == "span" and "m" in a.get("class", "").split():
                for k in a.get("data-gold", "").split():
                    self.post.gold.setdefault(int(k), set()).update(offsets)
                for k in a.get("data-pred", "").split():
                    self.post.pred.setdefault(int(k), set()).update(offsets)


def parse_report(page: str) -> ParsedPage:
    """Read a report page (or a browser's DOM dump of it) back; see ``ParsedPage``."""
    parser = _ReportParser()
    parser.feed(page)
    parser.close()
    return parser.page
