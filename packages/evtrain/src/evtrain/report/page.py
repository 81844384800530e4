"""The run report page: headline figures, error breakdown, per-symptom and per-length tables, every post."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from evdata.records import SYMPTOMS
from evtrain.records import PredictionRecord, RunMetrics, Scores
from evtrain.report.highlight import render_marked
from evtrain.report.inputs import Explanation, RunInputs
from evtrain.report.layout import document, page_header
from evtrain.report.markup import bar, esc, png_data_uri, tag
from evtrain.report.outcomes import (
    LENGTH_BUCKETS,
    OUTCOME_LABELS,
    OUTCOMES,
    GroupFigures,
    classify,
    figures,
    grouped,
    length_bucket,
    predicted,
    word_count,
)

# Posts longer than this start folded, so the page stays scannable (real posts reach ~7,000 words).
LONG_POST_WORDS = 350
OUTCOME_SHORT = {
    "exact": "exact",
    "partial": "partial",
    "wrong_sentence": "wrong",
    "missed": "missed",
    "spurious": "where none",
    "correct_empty": "empty",
}
METRIC_NAMES = {"f1": "F1", "exact_match": "exact match"}
BASELINE_NAMES = {"first_sentence": "first sentence", "keyword_sentence": "keyword sentence"}


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _stat(value: str, label: str) -> str:
    return tag("div", tag("div", value, class_="value") + tag("div", esc(label), class_="label"), class_="stat")


def _table(head: Sequence[tuple[str, bool]], rows: Sequence[str], class_: str | None = None) -> str:
    """``head`` is ``(label, numeric)`` per column; ``rows`` are finished ``<tr>`` strings."""
    th = "".join(tag("th", esc(label), class_="num" if numeric else None) for label, numeric in head)
    return tag("table", tag("thead", tag("tr", th)) + tag("tbody", "".join(rows)), class_=class_)


def _num(value: str) -> str:
    return tag("td", value, class_="num")


def _has_negatives(records: Sequence[PredictionRecord]) -> bool:
    """Whether any example has no gold evidence (evdata builds none, other producers may)."""
    return any(not r.gold_spans for r in records)


def _shown_outcomes(records: Sequence[PredictionRecord]) -> list[tuple[str, str, str]]:
    """The outcomes worth a row or a filter: the four about gold evidence always, the others when they occur."""
    present = {classify(r) for r in records}
    return [o for o in OUTCOMES if o[0] in ("exact", "partial", "wrong_sentence", "missed") or o[0] in present]


def _summary(inputs: RunInputs, overall: GroupFigures) -> str:
    m = inputs.metrics
    best = m.best if m else None
    parts = [
        tag(
            "div",
            _stat(f"{overall.f1:.1f}", f"F1 on {inputs.split} (%)")
            + _stat(f"{overall.exact_match:.1f}", f"exact match on {inputs.split} (%)")
            + (
                _stat(_fmt(overall.f1_with_evidence, ".1f"), "F1 on examples with evidence (%)")
                if overall.with_evidence < overall.examples
                else ""
            )
            + _stat(_fmt(best.value if best else None, ".1f"), f"best validation {_metric_name(best.metric if best else 'f1')} (%)")
            + _stat(f"{overall.examples:,}", "examples")
            + _stat(f"{overall.posts:,}", "posts"),
            class_="headline",
        )
    ]
    parts += _mismatch_warnings(inputs.recorded, overall, inputs.split)
    rows = [
        tag(
            "tr",
            tag("td", "model")
            + _num(f"{overall.f1:.1f}" + bar(overall.f1))
            + _num(f"{overall.exact_match:.1f}" + bar(overall.exact_match))
            + _num(f"{overall.examples:,}"),
            class_="model",
        )
    ]
    baselines = m.baselines.get(inputs.split, {}) if m else {}
    for name, scores in baselines.items():
        rows.append(
            tag(
                "tr",
                tag("td", esc(BASELINE_NAMES.get(name, name)))
                + _num(f"{scores.f1:.1f}" + bar(scores.f1, kind="base"))
                + _num(f"{scores.exact_match:.1f}" + bar(scores.exact_match, kind="base"))
                + _num(f"{scores.n:,}"),
            )
        )
    note = (
        "Baselines: the post's first sentence; the sentence with the most symptom keywords."
        if baselines
        else f"No baseline scores recorded for the {inputs.split} split."
    )
    scores_card = tag(
        "div",
        tag("h3", "Model and baselines")
        + tag("p", esc(note), class_="note")
        + _table((("", False), ("F1 %", True), ("EM %", True), ("n", True)), rows),
        class_="card",
    )
    parts.append(tag("div", scores_card + _training_card(m), class_="two"))
    if inputs.curves_png:
        parts.append(
            tag(
                "div",
                tag(
                    "figure",
                    f'<img alt="training curves" src="{png_data_uri(inputs.curves_png)}">'
                    + tag("figcaption", "Training loss and validation scores per evaluation"),
                ),
                class_="card",
            )
        )
    parts.extend(_detection(inputs))
    return tag("section", tag("h2", "Summary") + "".join(parts), id="summary")


def _detection(inputs: RunInputs) -> list[str]:
    """The no-answer decision: threshold, SQuAD 2.0 parts, per-symptom detection table, and F1 against the threshold."""
    m = inputs.metrics
    scores = inputs.recorded or (m.split(inputs.split) if m else None)
    parts = []
    if scores is not None and scores.per_symptom:
        rows = [
            tag(
                "tr",
                tag("td", esc(r.symptom))
                + _num(f"{r.precision:.1f}")
                + _num(f"{r.recall:.1f}")
                + _num(f"{r.f1:.1f}")
                + _num(f"{r.support:,}")
                + _num(f"{r.predicted:,}"),
            )
            for r in scores.per_symptom
        ]
        rows.append(
            tag(
                "tr",
                tag("td", "macro")
                + _num(f"{scores.symptom_macro_precision:.1f}")
                + _num(f"{scores.symptom_macro_recall:.1f}")
                + _num(f"{scores.symptom_macro_f1:.1f}")
                + _num("")
                + _num(""),
            )
        )
        threshold = "" if scores.threshold is None else f"{scores.threshold:.3f}"
        note = (
            f"A (post, symptom) holds evidence when its best span beats the no-answer (CLS) score by more than -threshold "
            f"(threshold {threshold}, tuned on validation). HasAns F1 {scores.has_ans_f1:.1f} % over {scores.has_ans_total:,}, "
            f"NoAns accuracy {scores.no_ans_exact:.1f} % over {scores.no_ans_total:,}; evidence spans P/R/F1 "
            f"{scores.evidence_precision:.1f} / {scores.evidence_recall:.1f} / {scores.evidence_f1:.1f} %."
        )
        head = (("symptom", False), ("precision %", True), ("recall %", True), ("F1 %", True), ("support", True), ("decided present", True))
        parts.append(
            tag(
                "div",
                tag("h3", "Symptom detection (post level)") + tag("p", esc(note), class_="note") + _table(head, rows),
                class_="card",
                id="detection",
            )
        )
    if inputs.threshold_png:
        parts.append(
            tag(
                "div",
                tag(
                    "figure",
                    f'<img alt="validation F1 against the no-answer threshold" src="{png_data_uri(inputs.threshold_png)}">'
                    + tag("figcaption", "Validation F1 (SQuAD 2.0) against the no-answer threshold; the dashed line is the tuned one"),
                ),
                class_="card",
            )
        )
    return parts


def _metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def _mismatch_warnings(recorded: Scores | None, overall: GroupFigures, split: str) -> list[str]:
    """A warning per figure where the recorded scores and the predictions file disagree (a stale metrics file)."""
    if recorded is None:
        return []
    return [
        tag(
            "div",
            esc(f"metrics record {key} = {value:.2f} for {split}, but the predictions file gives {mine:.2f}; re-run invoke evaluate."),
            class_="warning",
        )
        for key, value, mine in (("f1", recorded.f1, overall.f1), ("exact_match", recorded.exact_match, overall.exact_match))
        if abs(value - mine) > 0.01
    ]


def _training_card(m: RunMetrics | None) -> str:
    lines = []
    if m is not None:
        b = m.best
        lines.append(f"Best checkpoint: epoch {b.epoch}, step {b.step}, validation {_metric_name(b.metric)} {b.value:.1f}.")
        if m.stopped_early:
            lines.append("Training stopped early (no improvement within the patience).")
    rows = [
        tag(
            "tr",
            _num(f"{h.epoch:d}")
            + _num(f"{h.step:d}")
            + _num(f"{h.train_loss:.3f}")
            + _num(f"{h.val_f1:.1f}")
            + _num(f"{h.val_exact_match:.1f}")
            + _num(f"{h.train_seconds:.0f}")
            + _num(f"{h.train_tokens_per_second:,.0f}"),
        )
        for h in (m.history if m else [])
    ]
    table = (
        _table(
            (("epoch", True), ("step", True), ("loss", True), ("val F1", True), ("val EM", True), ("train s", True), ("tok/s", True)), rows
        )
        if rows
        else tag("p", "No training history recorded.", class_="note")
    )
    return tag("div", tag("h3", "Training") + tag("p", esc(" ".join(lines)), class_="note") + table, class_="card")


def _errors(overall: GroupFigures, shown: Sequence[tuple[str, str, str]]) -> str:
    total = max(1, overall.examples)
    stack = "".join(
        tag(
            "span",
            style=f"width:{100.0 * overall.outcomes[key] / total:.2f}%;background:var(--{key})",
            title=f"{label}: {overall.outcomes[key]}",
        )
        for key, label, _ in OUTCOMES
        if overall.outcomes[key]
    )
    rows = [
        tag(
            "tr",
            tag("td", tag("span", esc(label), class_=f"badge {key}"))
            + tag("td", esc(description))
            + _num(f"{overall.outcomes[key]:,}")
            + _num(f"{100.0 * overall.outcomes[key] / total:.1f}%"),
        )
        for key, label, description in shown
    ]
    body = tag(
        "div",
        tag("div", stack, class_="stack") + _table((("outcome", False), ("meaning", False), ("examples", True), ("share", True)), rows),
        class_="card",
    )
    return tag("section", tag("h2", "Error breakdown") + body, id="errors")


def _group_table(groups: Sequence[GroupFigures], first: str, name_cell: Callable[[str], str], *, with_posts: bool, negatives: bool) -> str:
    """Scores and outcome counts per group; the columns about examples without evidence only when there are any."""
    outcome_keys = ["exact", "partial", "wrong_sentence", "missed"] + (["spurious"] if negatives else [])
    head = [(first, False)] + ([("posts", True)] if with_posts else []) + [("examples", True)]
    head += [("with evidence", True)] if negatives else []
    head += [("EM %", True), ("F1 %", True)] + ([("F1 with evidence %", True)] if negatives else [])
    rows = []
    for g in groups:
        cells = tag("td", name_cell(g.name), class_="name")
        cells += _num(f"{g.posts:,}") if with_posts else ""
        cells += _num(f"{g.examples:,}")
        cells += _num(f"{g.with_evidence:,}") if negatives else ""
        cells += _num(f"{g.exact_match:.1f}") + _num(f"{g.f1:.1f}" + bar(g.f1))
        cells += _num(_fmt(g.f1_with_evidence, ".1f")) if negatives else ""
        cells += "".join(_num(f"{g.outcomes[k]:,}" if g.outcomes[k] else tag("span", "0", class_="none")) for k in outcome_keys)
        rows.append(tag("tr", cells))
    th = "".join(tag("th", esc(label), class_="num" if numeric else None) for label, numeric in head)
    th += "".join(
        tag(
            "th",
            tag("span", "", class_="swatch", style=f"background:var(--{k})") + esc(OUTCOME_SHORT[k]),
            class_="num",
            title=OUTCOME_LABELS[k],
        )
        for k in outcome_keys
    )
    return tag("div", tag("table", tag("thead", tag("tr", th)) + tag("tbody", "".join(rows)), class_="groups"), class_="scroll")


def _symptoms(records: Sequence[PredictionRecord], question_mode: str) -> str:
    if question_mode != "symptom" or not any(r.symptom for r in records):
        note = "The run asks one question per post (question_mode = empty), so there are no per-symptom figures."
        return tag("section", tag("h2", "Per symptom") + tag("p", esc(note), class_="note"), id="symptoms")
    groups = grouped(records, lambda r: r.symptom, SYMPTOMS)
    note = "One example per post and symptom with gold evidence; outcome columns count examples (see the error breakdown)."
    table = _group_table(
        groups, "symptom", lambda name: tag("span", esc(name), class_="sym"), with_posts=False, negatives=_has_negatives(records)
    )
    body = tag("div", tag("p", esc(note), class_="note") + table, class_="card")
    return tag("section", tag("h2", "Per symptom") + body, id="symptoms")


def _lengths(records: Sequence[PredictionRecord], posts: Mapping[str, str]) -> str:
    words = {post_id: word_count(text) for post_id, text in posts.items()}
    groups = grouped(records, lambda r: length_bucket(words[r.post_id]), [label for _, label in LENGTH_BUCKETS])
    note = "Posts grouped by length in words; long posts span several model windows."
    table = _group_table(groups, "post length", esc, with_posts=True, negatives=_has_negatives(records))
    body = tag("div", tag("p", esc(note), class_="note") + table, class_="card")
    return tag("section", tag("h2", "Per post length") + body, id="lengths")


def _toolbar(records: Sequence[PredictionRecord], question_mode: str) -> str:
    outcome_options = tag("option", "all outcomes", value="all") + tag("option", "errors only", value="errors")
    outcome_options += "".join(tag("option", esc(label), value=key) for key, label, _ in _shown_outcomes(records))
    controls = [tag("label", "Outcome " + tag("select", outcome_options, id="f-outcome"))]
    symptoms = {r.symptom for r in records if r.symptom}
    if question_mode == "symptom" and symptoms:
        ordered = [s for s in SYMPTOMS if s in symptoms] + sorted(symptoms - set(SYMPTOMS))
        options = tag("option", "all symptoms", value="all") + "".join(tag("option", esc(s), value=s) for s in ordered)
        controls.append(tag("label", "Symptom " + tag("select", options, id="f-symptom")))
    controls.append(tag("label", "Score at least " + '<input type="number" id="f-score" step="0.5" placeholder="any">'))
    sort_options = "".join(
        tag("option", label, value=value)
        for value, label in (
            ("post", "post order"),
            ("score-desc", "highest score first"),
            ("score-asc", "lowest score first"),
            ("f1-asc", "lowest F1 first"),
        )
    )
    controls.append(tag("label", "Sort " + tag("select", sort_options, id="f-sort")))
    controls.append(tag("span", "", id="shown-count", class_="count"))
    return tag("div", "".join(controls), class_="toolbar")


def _explanations_for(record: PredictionRecord, explanations: Sequence[Explanation], question_mode: str) -> list[str]:
    if question_mode == "symptom" and record.symptom:
        return [e.text for e in explanations if e.symptom == record.symptom]
    return [f"{e.symptom}: {e.text}" for e in explanations]


def _example_row(k: int, record: PredictionRecord, outcome: str, explanations: list[str]) -> str:
    if predicted(record):
        shown = tag("div", tag("span", esc(record.prediction_text), class_="key-pred"), class_="quote", dir="auto")
    else:
        shown = tag("span", "no span predicted", class_="none")
    gold = "".join(tag("div", tag("span", esc(text), class_="key-gold"), class_="quote", dir="auto") for text in record.gold_texts)
    if not gold:
        gold = tag("span", "no gold evidence", class_="none")
    gold += "".join(tag("div", esc(text), class_="why", dir="auto", title="annotator's explanation") for text in explanations)
    return tag(
        "tr",
        tag("td", tag("span", esc(record.symptom or "—"), class_="sym"))
        + tag("td", tag("span", esc(OUTCOME_LABELS[outcome]), class_=f"badge {outcome}"))
        + _num(_fmt(record.score, ".2f"))
        + _num(f"{100 * record.f1:.0f}")
        + tag("td", shown, class_="text")
        + tag("td", gold, class_="text"),
        data_example=str(k),
        data_outcome=outcome,
        data_symptom=record.symptom,
        data_score="" if record.score is None else repr(record.score),
        data_f1=repr(record.f1),
        title=f"example {record.example_id}",
    )


def render_post(
    index: int, post_id: str, text: str, records: Sequence[PredictionRecord], explanations: Sequence[Explanation], question_mode: str
) -> str:
    """One ``<section class="post">``: the marked text (folded when long) and a row per example."""
    labels = {k: r.symptom or "evidence" for k, r in enumerate(records)}
    marked = render_marked(
        text, {k: r.gold_spans for k, r in enumerate(records)}, {k: (r.start, r.end) for k, r in enumerate(records)}, labels
    )
    words = word_count(text)
    body = tag("div", marked, class_="post-text", dir="auto")
    if words > LONG_POST_WORDS:
        body = tag("details", tag("summary", esc(f"Show the whole post ({words:,} words)")) + body, class_="long")
    outcomes = [classify(r) for r in records]
    counts = {key: outcomes.count(key) for key in OUTCOME_LABELS if key in outcomes}
    badges = "".join(
        tag("span", esc(f"{OUTCOME_LABELS[key]} ×{n}" if n > 1 else OUTCOME_LABELS[key]), class_=f"badge {key}")
        for key, n in counts.items()
    )
    header = tag(
        "header",
        tag("h3", "Post " + tag("code", esc(post_id)))
        + tag("span", esc(f"{words:,} words · {length_bucket(words)}"), class_="meta")
        + tag("span", badges, class_="badges"),
    )
    rows = [_example_row(k, r, outcomes[k], _explanations_for(r, explanations, question_mode)) for k, r in enumerate(records)]
    head = (
        ("symptom", False),
        ("outcome", False),
        ("score", True),
        ("F1", True),
        ("predicted span", False),
        ("gold evidence and explanation", False),
    )
    return tag(
        "section",
        header + body + _table(head, rows, class_="examples"),
        class_="post",
        id=f"post-{index}",
        data_order=str(index),
        data_post=post_id,
    )


def _posts(inputs: RunInputs, question_mode: str) -> str:
    by_post: dict[str, list[PredictionRecord]] = {}
    for r in inputs.records:
        by_post.setdefault(r.post_id, []).append(r)
    legend = tag(
        "div",
        tag("span", tag("span", "gold evidence", class_="key-gold"))
        + tag("span", tag("span", "predicted span", class_="key-pred"))
        + tag("span", tag("span", "both (overlap)", class_="key-both"))
        + tag("span", "Hover a mark to see its symptom; scores are the model's start + end logits."),
        class_="legend",
    )
    sections = [
        render_post(i, post_id, inputs.posts[post_id], recs, inputs.explanations.get(post_id, ()), question_mode)
        for i, (post_id, recs) in enumerate(by_post.items())
    ]
    empty = tag("div", "No example passes the filters.", id="no-match", class_="empty-state card", hidden=True)
    return tag(
        "section",
        tag("h2", f"Posts of the {inputs.split} split")
        + _toolbar(inputs.records, question_mode)
        + legend
        + empty
        + tag("div", "".join(sections), id="post-list"),
        id="posts",
    )


def render_run_page(inputs: RunInputs) -> str:
    """The whole report of one run and split as a self-contained HTML page."""
    m = inputs.metrics
    question_mode = (m.question_mode if m else "") or ("symptom" if any(r.symptom for r in inputs.records) else "empty")
    overall = figures("all", inputs.records)
    chips: list[tuple[str, bool]] = []
    if inputs.synthetic:
        chips.append(("SYNTHETIC demo data", True))
    if m is not None:
        facts = (("model", m.model), ("questions", m.question_mode), ("device", m.device), ("precision", m.precision))
        chips += [(f"{label}: {value}", False) for label, value in facts if value]
    header = page_header(
        f"Evidence report · run {inputs.run_name}",
        f"{inputs.split} split · {overall.posts:,} posts · {overall.examples:,} examples",
        chips,
        (("summary", "Summary"), ("errors", "Errors"), ("symptoms", "Per symptom"), ("lengths", "Per length"), ("posts", "Posts")),
    )
    body = (
        _summary(inputs, overall)
        + _errors(overall, _shown_outcomes(inputs.records))
        + _symptoms(inputs.records, question_mode)
        + _lengths(inputs.records, inputs.posts)
        + _posts(inputs, question_mode)
    )
    return document(f"Evidence report · {inputs.run_name} · {inputs.split}", header, body, script=True)
