"""The HTML report: highlights at the predictions' offsets, escaping, one section per post, bad input.

(A search study's page is evsearch's: packages/evsearch/tests/test_evsearch_report.py.)
"""

from __future__ import annotations

import json

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from report_fixtures import HOSTILE_IMG, HOSTILE_SCRIPT, POSTS, parse_report, prediction_records, runs, write_sample_run

from evdata.config import write_record
from evtrain.records import PredictionRecord, SplitEvaluation, read_metrics, write_metrics
from evtrain.report import ReportError, write_report
from evtrain.report.highlight import pieces, render_marked
from evtrain.report.outcomes import classify, length_bucket


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The sample run and its report page (built once: the curves PNG takes matplotlib a moment)."""
    run = write_sample_run(tmp_path_factory.mktemp("report"))
    path = write_report(run=run.root)
    return run, path, path.read_text(encoding="utf-8")


def _record(**changes) -> PredictionRecord:
    base = PredictionRecord(
        example_id="p::S",
        post_id="p",
        question="",
        symptom="S",
        prediction_text="",
        start=0,
        end=0,
        score=None,
        gold_texts=[],
        gold_spans=[],
        exact_match=0.0,
        f1=0.0,
    )
    return attrs.evolve(base, **changes)


def test_default_output_is_report_of_split_in_run_dir(sample):
    run, path, _ = sample
    assert path == run.root / "report_test.html"


def test_one_section_per_post_in_prediction_order(sample):
    _, _, page = sample
    parsed = parse_report(page)
    expected = list(dict.fromkeys(r.post_id for r in prediction_records()))
    assert [p.post_id for p in parsed.posts] == expected
    assert sum(len(p.rows) for p in parsed.posts) == len(prediction_records())


def test_highlight_offsets_equal_prediction_offsets(sample):
    _, _, page = sample
    parsed = {p.post_id: p for p in parse_report(page).posts}
    for post_id, text in POSTS.items():
        post = parsed[post_id]
        assert post.text == text  # the rendered text is the post, character for character
        records = [r for r in prediction_records() if r.post_id == post_id]
        for k, r in enumerate(records):
            assert runs(post.pred.get(k, set())) == ([(r.start, r.end)] if r.end > r.start else [])
            assert runs(post.gold.get(k, set())) == runs({x for s, e in r.gold_spans for x in range(s, e)})
            assert post.rows[k]["data-example"] == str(k)


def test_post_text_is_escaped_and_never_markup(sample):
    _, _, page = sample
    assert HOSTILE_SCRIPT not in page and HOSTILE_IMG not in page
    assert "&lt;script&gt;document.body.setAttribute(&#x27;data-pwned&#x27;" in page
    # The post's literal "&amp;" must survive as text, so it is escaped once more in the source.
    assert "&amp;amp; &amp;lt;b&amp;gt;not bold" in page
    parsed = parse_report(page)
    assert parsed.scripts == 1  # the page's own filter script only
    assert parsed.event_handlers == []
    assert all(src.startswith("data:image/png;base64,") for src in parsed.image_sources)
    # The explanation's markup is text as well.
    assert "Feels like a &quot;burden&quot; &lt;b&gt;to others&lt;/b&gt; &amp; guilty." in page


def test_page_loads_nothing_from_outside(sample):
    _, _, page = sample
    assert "http://" not in page and "https://" not in page
    assert "default-src 'none'" in page


def test_user_text_direction_is_detected_per_element(sample):
    _, _, page = sample
    assert page.count('class="post-text" dir="auto"') == len(POSTS)


def test_rows_carry_outcome_symptom_and_score(sample):
    _, _, page = sample
    rows = {(p.post_id, row["data-symptom"]): row for p in parse_report(page).posts for row in p.rows}
    assert rows["p1", "DEPRESSED_MOOD"]["data-outcome"] == "exact"
    assert rows["p1", "ANHEDONIA"]["data-outcome"] == "partial"
    assert rows["p1", "SLEEP_ISSUES"]["data-outcome"] == "wrong_sentence"
    assert rows["p2", "SLEEP_ISSUES"]["data-outcome"] == "missed"
    assert rows["p2", "SLEEP_ISSUES"]["data-score"] == ""
    assert float(rows["p1", "DEPRESSED_MOOD"]["data-score"]) == 7.25


def test_long_post_is_folded_and_short_ones_are_not(sample):
    _, _, page = sample
    collapsed = {p.post_id: p.collapsed for p in parse_report(page).posts}
    assert collapsed == {"p1": False, "p2": False, "p3": True, "p4": False}


def test_summary_shows_scores_baselines_and_curves(sample):
    _, _, page = sample
    records = prediction_records()
    f1 = 100 * sum(r.f1 for r in records) / len(records)
    assert f'<div class="value">{f1:.1f}</div>' in page
    assert "keyword sentence" in page and "35.6" in page
    assert 'alt="training curves" src="data:image/png;base64,' in page
    for section in ("summary", "errors", "symptoms", "lengths", "posts"):
        assert f'id="{section}"' in page


def test_symptom_table_lists_each_symptom_once(sample):
    _, _, page = sample
    symptoms = {r.symptom for r in prediction_records()}
    for symptom in symptoms:
        assert page.count(f'<td class="name"><span class="sym">{symptom}</span></td>') == 1


def test_same_inputs_give_the_same_bytes(sample, tmp_path):
    run, _, page = sample
    again = write_report(run=run.root, output=tmp_path / "again.html")
    assert again.read_text(encoding="utf-8") == page


def test_empty_question_mode_has_no_symptom_table(tmp_path):
    run = write_sample_run(tmp_path, curves=False)
    records = [attrs.evolve(r, symptom="", question="", example_id=f"{r.post_id}#{i}") for i, r in enumerate(prediction_records())]
    write_record(run.split_predictions("test"), records)
    write_metrics(run.metrics, attrs.evolve(read_metrics(run.metrics), question_mode="empty"))
    page = write_report(run=run.root).read_text(encoding="utf-8")
    assert "question_mode = empty" in page
    assert 'id="f-symptom"' not in page
    assert len(parse_report(page).posts) == len(POSTS)


def test_offsets_that_do_not_fit_the_post_name_record_and_field(tmp_path):
    run = write_sample_run(tmp_path, curves=False)
    records = prediction_records()
    records[2] = attrs.evolve(records[2], start=records[2].start + 1)
    write_record(run.split_predictions("test"), records)
    with pytest.raises(ReportError, match=r"test\.json, record 2 \(example 'p1::SLEEP_ISSUES'\): field 'start/end'"):
        write_report(run=run.root)


def test_post_missing_from_corpus_is_an_error(tmp_path):
    run = write_sample_run(tmp_path, curves=False)
    records = [*prediction_records(), attrs.evolve(prediction_records()[0], example_id="zz::X", post_id="zz")]
    write_record(run.split_predictions("test"), records)
    with pytest.raises(ReportError, match=r"record 9 .*post 'zz' is not in the corpus; pass --data-dir"):
        write_report(run=run.root)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"example_id": "a"', r"line 1, column 20: invalid JSON"),
        ('{"a": 1}', r"expected a JSON list"),
        ('[{"example_id": "a", "post_id": "p1"}]', r"test\.json: .*\$\[0\]\.prediction_text: required field missing"),
        ('[{"example_id": "a", "post_id": "p1", "extra": 1}]', r"\$\[0\]\.extra: unknown key"),
    ],
)
def test_malformed_predictions_file_is_a_clear_error(tmp_path, content, message):
    run = write_sample_run(tmp_path, curves=False)
    run.split_predictions("test").write_text(content, encoding="utf-8")
    with pytest.raises(ReportError, match=message):
        write_report(run=run.root)


def _records_as_data(**changes) -> list[dict]:
    from evdata.config import to_data

    return [{**to_data(r), **changes} for r in prediction_records()]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"start": "seven"}, r"test\.json: .*\$\[0\]\.start: expected an integer, got 'seven'"),
        ({"gold_texts": []}, r"test\.json, record 0: gold_texts has 0 entries but gold_spans has 1"),
        ({"start": 9, "end": 4}, r"test\.json, record 0: field 'start/end' must satisfy 0 <= start <= end, got \[9, 4\]"),
        ({"example_id": "same"}, r"test\.json, record 1: duplicate example_id 'same' \(first at record 0\)"),
    ],
)
def test_prediction_records_that_break_the_contract_name_record_and_field(tmp_path, changes, message):
    run = write_sample_run(tmp_path, curves=False)
    run.split_predictions("test").write_text(json.dumps(_records_as_data(**changes)), encoding="utf-8")
    with pytest.raises(ReportError, match=message):
        write_report(run=run.root)


def test_metrics_file_that_does_not_match_names_file_and_field(tmp_path):
    run = write_sample_run(tmp_path, curves=False)
    metrics = json.loads(run.metrics.read_text(encoding="utf-8"))
    metrics["best"]["epoch"] = "three"
    run.metrics.write_text(json.dumps(metrics), encoding="utf-8")
    with pytest.raises(ReportError, match=r"metrics\.json: .*\$\.best\.epoch: expected an integer, got 'three'"):
        write_report(run=run.root)
    run.metrics.write_text("[]", encoding="utf-8")
    with pytest.raises(ReportError, match=r"metrics\.json: expected a JSON object, got list"):
        write_report(run=run.root)


def test_a_stale_split_evaluation_is_flagged_and_a_matching_one_is_not(sample, tmp_path):
    _, _, page = sample
    assert 'class="warning"' not in page  # the sample's metrics_test.json matches its predictions
    run = write_sample_run(tmp_path, curves=False)
    stale = SplitEvaluation(split="test", scores=attrs.evolve(read_metrics(run.metrics).test, f1=12.5), seconds=1.0, windows=14)
    write_record(run.split_metrics("test"), stale)
    page = write_report(run=run.root).read_text(encoding="utf-8")
    assert "metrics record f1 = 12.50 for test, but the predictions file gives" in page


def test_a_run_without_metrics_still_gets_its_page(tmp_path):
    run = write_sample_run(tmp_path, curves=False)
    run.metrics.unlink()
    run.split_metrics("test").unlink()
    page = write_report(run=run.root).read_text(encoding="utf-8")
    assert "No training history recorded." in page and "No baseline scores recorded for the test split." in page
    assert len(parse_report(page).posts) == len(POSTS)


def test_a_study_needs_evsearch(tmp_path):
    with pytest.raises(ReportError, match="needs evsearch"):
        write_report(study=tmp_path)


def test_missing_split_says_how_to_make_it(tmp_path):
    run = write_sample_run(tmp_path, curves=False)
    with pytest.raises(
        ReportError, match=r"no predictions for split 'val' \(available: test\); run `invoke evaluate --run .* --split val`"
    ):
        write_report(run=run.root, split="val")


def test_outcomes():
    gold = {"gold_texts": ["abc def"], "gold_spans": [[10, 17]]}
    assert classify(_record(**gold, prediction_text="abc def", start=10, end=17, exact_match=1.0, f1=1.0)) == "exact"
    assert classify(_record(**gold, prediction_text="def ghi", start=14, end=21, f1=0.5)) == "partial"
    assert classify(_record(**gold, prediction_text="xyz", start=17, end=20)) == "wrong_sentence"  # touching is not overlapping
    assert classify(_record(**gold)) == "missed"
    assert classify(_record(prediction_text="xyz", start=0, end=3)) == "spurious"
    assert classify(_record()) == "correct_empty"


def test_length_buckets():
    assert [length_bucket(n) for n in (0, 99, 100, 299, 300, 999, 1000, 7000)] == [
        "under 100 words",
        "under 100 words",
        "100–299 words",
        "100–299 words",
        "300–999 words",
        "300–999 words",
        "1,000 words or more",
        "1,000 words or more",
    ]


_TEXT = st.text(alphabet=st.sampled_from([*"ab <>&\"'\n;#", "😞", "א", "\u202e"]), max_size=40)


@st.composite
def _marked_text(draw):
    text = draw(_TEXT)
    span = st.tuples(st.integers(0, len(text)), st.integers(0, len(text))).map(sorted).map(tuple)
    gold = {k: draw(st.lists(span, max_size=3)) for k in range(draw(st.integers(0, 4)))}
    pred = {k: draw(span) for k in range(draw(st.integers(0, 4)))}
    return text, gold, pred


@given(_marked_text())
def test_marks_cover_exactly_the_spans_and_keep_the_text(case):
    text, gold, pred = case
    cut = pieces(len(text), gold, pred)
    # The pieces tile the text: no gap, no overlap, nothing empty.
    assert [p.start for p in cut] == [0, *(p.end for p in cut[:-1])][: len(cut)]
    assert (cut[-1].end if cut else 0) == len(text) and all(p.start < p.end for p in cut)
    page = '<section class="post" data-post="x"><div class="post-text">' + render_marked(text, gold, pred, {}) + "</div></section>"
    (post,) = parse_report(page).posts
    assert post.text == text
    for k, spans in gold.items():
        assert post.gold.get(k, set()) == {x for s, e in spans for x in range(s, e)}
    for k, (s, e) in pred.items():
        assert post.pred.get(k, set()) == set(range(s, e))
