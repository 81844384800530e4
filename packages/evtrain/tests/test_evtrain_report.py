"""The HTML report: highlights at the predictions' offsets, escaping, one section per post, bad input, studies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evtrain.report import ReportError, write_report
from evtrain.report.highlight import pieces, render_marked
from evtrain.report.inputs import ExampleRecord
from evtrain.report.outcomes import classify, length_bucket
from evtrain.report.testing import HOSTILE_IMG, HOSTILE_SCRIPT, POSTS, parse_report, prediction_records, runs, write_sample_run


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The sample run and its report page (built once: the curves PNG takes matplotlib a moment)."""
    run = write_sample_run(tmp_path_factory.mktemp("report"))
    path = write_report(run=run.root)
    return run, path, path.read_text(encoding="utf-8")


def _record(**changes) -> ExampleRecord:
    base = {
        "example_id": "p::S",
        "post_id": "p",
        "question": "",
        "symptom": "S",
        "prediction_text": "",
        "start": 0,
        "end": 0,
        "score": None,
        "gold_texts": [],
        "gold_spans": [],
        "exact_match": 0.0,
        "f1": 0.0,
    }
    return ExampleRecord.from_json({**base, **changes}, "test")


def test_default_output_is_report_of_split_in_run_dir(sample):
    run, path, _ = sample
    assert path == run.root / "report_test.html"


def test_one_section_per_post_in_prediction_order(sample):
    _, _, page = sample
    parsed = parse_report(page)
    expected = list(dict.fromkeys(r["post_id"] for r in prediction_records()))
    assert [p.post_id for p in parsed.posts] == expected
    assert sum(len(p.rows) for p in parsed.posts) == len(prediction_records())


def test_highlight_offsets_equal_prediction_offsets(sample):
    _, _, page = sample
    parsed = {p.post_id: p for p in parse_report(page).posts}
    for post_id, text in POSTS.items():
        post = parsed[post_id]
        assert post.text == text  # the rendered text is the post, character for character
        records = [r for r in prediction_records() if r["post_id"] == post_id]
        for k, r in enumerate(records):
            assert runs(post.pred.get(k, set())) == ([(r["start"], r["end"])] if r["end"] > r["start"] else [])
            assert runs(post.gold.get(k, set())) == runs({x for s, e in r["gold_spans"] for x in range(s, e)})
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
    f1 = 100 * sum(r["f1"] for r in records) / len(records)
    assert f'<div class="value">{f1:.1f}</div>' in page
    assert "keyword sentence" in page and "35.6" in page
    assert 'alt="training curves" src="data:image/png;base64,' in page
    for section in ("summary", "errors", "symptoms", "lengths", "posts"):
        assert f'id="{section}"' in page


def test_symptom_table_lists_each_symptom_once(sample):
    _, _, page = sample
    symptoms = {r["symptom"] for r in prediction_records()}
    for symptom in symptoms:
        assert page.count(f'<td class="name"><span class="sym">{symptom}</span></td>') == 1


def test_same_inputs_give_the_same_bytes(sample, tmp_path):
    run, _, page = sample
    again = write_report(run=run.root, output=tmp_path / "again.html")
    assert again.read_text(encoding="utf-8") == page


def test_empty_question_mode_has_no_symptom_table(tmp_path):
    run = write_sample_run(tmp_path, curves=False)
    records = [{**r, "symptom": "", "question": "", "example_id": f"{r['post_id']}#{i}"} for i, r in enumerate(prediction_records())]
    run.split_predictions("test").write_text(json.dumps(records), encoding="utf-8")
    metrics = json.loads(run.metrics.read_text(encoding="utf-8"))
    run.metrics.write_text(json.dumps({**metrics, "question_mode": "empty"}), encoding="utf-8")
    page = write_report(run=run.root).read_text(encoding="utf-8")
    assert "question_mode = empty" in page
    assert 'id="f-symptom"' not in page
    assert len(parse_report(page).posts) == len(POSTS)


def test_offsets_that_do_not_fit_the_post_name_record_and_field(tmp_path):
    run = write_sample_run(tmp_path, curves=False)
    records = prediction_records()
    records[2] = {**records[2], "start": records[2]["start"] + 1}
    run.split_predictions("test").write_text(json.dumps(records), encoding="utf-8")
    with pytest.raises(ReportError, match=r"test\.json, record 2 \(example 'p1::SLEEP_ISSUES'\): field 'start/end'"):
        write_report(run=run.root)


def test_post_missing_from_corpus_is_an_error(tmp_path):
    run = write_sample_run(tmp_path, curves=False)
    records = [*prediction_records(), {**prediction_records()[0], "example_id": "zz::X", "post_id": "zz"}]
    run.split_predictions("test").write_text(json.dumps(records), encoding="utf-8")
    with pytest.raises(ReportError, match=r"record 9 .*post 'zz' is not in the corpus; pass --data-dir"):
        write_report(run=run.root)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"example_id": "a"', r"line 1, column 20: invalid JSON"),
        ('{"a": 1}', r"expected a JSON list"),
        ('[{"example_id": "a", "post_id": "p1"}]', r"record 0: missing field\(s\) prediction_text, start, end, gold_texts, gold_spans"),
    ],
)
def test_malformed_predictions_file_is_a_clear_error(tmp_path, content, message):
    run = write_sample_run(tmp_path, curves=False)
    run.split_predictions("test").write_text(content, encoding="utf-8")
    with pytest.raises(ReportError, match=message):
        write_report(run=run.root)


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


def _write_study(folder: Path, trials) -> None:
    folder.mkdir(parents=True)
    (folder / "trials.json").write_text(json.dumps(trials), encoding="utf-8")
    (folder / "optimization_history.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)


def test_study_report_lists_trials_best_first_and_embeds_plots(tmp_path):
    study = tmp_path / "search" / "demo"
    trials = [
        {
            "number": 0,
            "state": "COMPLETE",
            "params": {"learning_rate": 1e-4},
            "value": 41.5,
            "duration_seconds": 60.0,
            "val_f1": {"2": 41.5, "1": 30.25},
        },
        {"number": 1, "state": "PRUNED", "params": {"learning_rate": 3e-5}, "value": None, "duration_seconds": 12.0},
        {"number": 2, "state": "COMPLETE", "params": {"learning_rate": 5e-5}, "value": 47.25, "duration_seconds": 58.0},
    ]
    _write_study(study, trials)
    (study / "summary.json").write_text(
        json.dumps({"best": {"number": 2, "value": 47.25, "params": {"learning_rate": 5e-5, "epochs": 4}}}), encoding="utf-8"
    )
    path = write_report(run=study)  # a study folder given as --run is recognised
    assert path == study / "report.html"
    page = path.read_text(encoding="utf-8")
    assert page.index("47.25") < page.index("41.5")
    assert '<th title="params.learning_rate">learning_rate</th>' in page and "PRUNED" in page
    assert "30.25 → 41.5" in page  # validation F1 per epoch, in epoch order, in one cell
    assert "Best trial #2: value 47.25" in page and "<code>epochs</code>" in page
    assert 'src="data:image/png;base64,iVBORw0KGgo' in page


def test_study_from_csv_and_errors(tmp_path):
    study = tmp_path / "s"
    study.mkdir()
    (study / "trials.csv").write_text("number,value,state,params_lr\n0,40.0,COMPLETE,0.001\n1,45.0,COMPLETE,<b>x</b>\n", encoding="utf-8")
    page = write_report(study=study).read_text(encoding="utf-8")
    assert page.index("45") < page.index("40.0") and "&lt;b&gt;x&lt;/b&gt;" in page
    with pytest.raises(ReportError, match=r"no trials\.json or trials\.csv found"):
        write_report(study=tmp_path)
    with pytest.raises(ReportError, match="not both"):
        write_report(run=study, study=study)
