"""Issue 14: no-answer examples, the no-answer threshold (tuned on val, stored, reused), decisions everywhere."""

import csv
import json

import attrs
import numpy as np
import pytest
from evtrain_fixtures import tiny_settings

from evdata.config import read_record
from evdata.dataset import load_dataset
from evfeatures.windows import build_windows
from evmodel.loading import load_tokenizer
from evtrain.api import run_evaluation, run_prediction
from evtrain.loop import epoch_windows, train
from evtrain.predict import CSV_COLUMNS
from evtrain.records import PredictionRecord, RunMetrics, read_metrics, read_predictions
from evtrain.report.api import write_run_report
from evtrain.runs import RunPaths, new_run


@pytest.fixture(scope="module")
def trained(tiny_corpus, tiny_model, tmp_path_factory):
    settings = tiny_settings(tiny_corpus, tiny_model, epochs=2)
    dataset = load_dataset(settings.data)
    run = new_run(None, tmp_path_factory.mktemp("runs"))
    result = train(settings, dataset, run, show_progress=False)
    return settings, dataset, run, result


def test_every_post_is_asked_every_symptom(trained):
    settings, dataset, _, _ = trained
    assert settings.data.no_answer_examples
    assert len(dataset.examples) == 9 * len(dataset.corpus.posts)
    assert any(not ex.has_answer for ex in dataset.examples)


def test_threshold_is_tuned_on_val_stored_and_applied_to_test(trained):
    _, _, run, result = trained
    metrics = read_record(run.metrics, RunMetrics)  # typed, extra keys forbidden
    assert metrics == result.metrics
    assert metrics.threshold_source == "tuned on val"
    assert metrics.null_threshold is not None
    assert metrics.val.threshold == metrics.null_threshold
    assert metrics.test.threshold == metrics.null_threshold
    # SQuAD 2.0 parts and detection figures are in the typed record
    for scores in (metrics.val, metrics.test):
        assert scores.has_ans_total + scores.no_ans_total == scores.n
        assert scores.no_ans_total > 0 and scores.has_ans_total > 0
        assert [r.symptom for r in scores.per_symptom][:3] == ["DEPRESSED_MOOD", "ANHEDONIA", "APPETITE_CHANGE"]
        assert 0 <= scores.symptom_macro_f1 <= 100
    # at the tuned threshold validation F1 is the best any threshold gives
    assert metrics.val.f1 == pytest.approx(max(metrics.val.f1, metrics.val.best_f1 or 0.0))
    # baselines are scored on the same rows
    for split in ("val", "test"):
        for b in metrics.baselines[split].values():
            assert b.n == metrics.split(split).n
            assert b.no_ans_total == metrics.split(split).no_ans_total
    assert run.threshold_plot.is_file()


def test_predictions_carry_the_decision(trained):
    _, _dataset, run, result = trained
    records = read_predictions(run.split_predictions("test"))
    assert all(isinstance(r, PredictionRecord) for r in records)
    for r in records:
        if not r.present:
            assert (r.prediction_text, r.start, r.end, r.spans) == ("", 0, 0, [])
        else:
            assert r.spans and r.spans[0].text == r.prediction_text
            assert r.margin is not None and r.margin >= -result.metrics.null_threshold - 1e-4


def test_evaluate_uses_the_stored_threshold_and_never_retunes(trained, tmp_path):
    settings, dataset, run, result = trained
    again = run_evaluation(RunPaths(run.root), "test", dataset, settings)
    assert again.scores == result.metrics.test
    # a different stored threshold is what evaluate applies, on test and on val alike
    metrics = json.loads(run.metrics.read_text())
    original = metrics["null_threshold"]
    try:
        metrics["null_threshold"] = 1e6  # no example is ever "no answer"
        run.metrics.write_text(json.dumps(metrics))
        for split in ("test", "val"):
            evaluation = run_evaluation(RunPaths(run.root), split, dataset, settings)
            assert evaluation.scores.threshold == 1e6
            assert all(r.present for r in read_predictions(run.split_predictions(split)) if r.score is not None)
    finally:
        metrics["null_threshold"] = original
        run.metrics.write_text(json.dumps(metrics))
        run_evaluation(RunPaths(run.root), "test", dataset, settings)
    # a fixed threshold in the settings overrides the stored one
    fixed = attrs.evolve(settings, features=attrs.evolve(settings.features, null_threshold=-1e6))
    evaluation = run_evaluation(RunPaths(run.root), "test", dataset, fixed)
    assert evaluation.scores.threshold == -1e6
    assert evaluation.scores.no_ans_exact == 100.0
    run_evaluation(RunPaths(run.root), "test", dataset, settings)


def test_predict_writes_decisions_and_a_flat_csv(trained, tmp_path):
    _, _, run, _result = trained
    posts = tmp_path / "new.jsonl"
    texts = {
        "n1": "I feel empty and sad every single day. We had pasta.",
        "n2": "My sister called me on Sunday. We had pasta for dinner again.",
    }
    posts.write_text("".join(json.dumps({"post_id": k, "text": v}) + "\n" for k, v in texts.items()))
    out = run_prediction(RunPaths(run.root), posts, tmp_path / "out.json", show_progress=False)
    records = json.loads(out.read_text())
    assert len(records) == 2 * 9
    for r in records:
        assert {"present", "spans", "null_score", "margin"} <= set(r)
        for span in r["spans"]:
            assert texts[r["post_id"]][span["start"] : span["end"]] == span["text"]
        assert bool(r["spans"]) == r["present"]
    out_csv = run_prediction(RunPaths(run.root), posts, tmp_path / "out.csv", show_progress=False)
    with open(out_csv, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == CSV_COLUMNS == ("post_id", "symptom", "present", "start", "end", "text", "score")
        rows = list(reader)
    present = [(r["post_id"], r["symptom"]) for r in records if r["present"]]
    assert {(r["post_id"], r["symptom"]) for r in rows if r["present"] == "True"} == set(present)
    assert {(r["post_id"], r["symptom"]) for r in rows} == {(r["post_id"], r["symptom"]) for r in records}
    for r in rows:
        if r["present"] == "True":
            assert texts[r["post_id"]][int(r["start"]) : int(r["end"])] == r["text"]


def test_no_answer_examples_are_labelled_cls_and_sampled_per_epoch(trained, tiny_model):
    settings, dataset, _, _ = trained
    examples = tuple(dataset.split.examples["train"])
    windows = build_windows(examples, load_tokenizer(tiny_model), settings.features)
    for w, index in enumerate(windows.example_index):
        if not examples[index].has_answer:
            assert windows.start_positions[w] == windows.end_positions[w] == windows.cls_index
    t = attrs.evolve(settings.train, no_answer_ratio=0.5, negative_window_ratio=1.0)
    s = attrs.evolve(settings, train=t)
    kept = [set(windows.example_index[epoch_windows(windows, examples, s, epoch)].tolist()) for epoch in range(3)]
    answerable = {i for i, ex in enumerate(examples) if ex.has_answer or ex.hard_negative}
    others = {i for i, ex in enumerate(examples) if not ex.has_answer and not ex.hard_negative}
    n_answerable = sum(ex.has_answer for ex in examples)
    for k in kept:
        assert answerable <= k
        assert len(k & others) == min(len(others), round(0.5 * n_answerable))
    assert kept[0] & others != kept[1] & others  # a new draw each epoch
    assert np.array_equal(epoch_windows(windows, examples, s, 1), epoch_windows(windows, examples, s, 1))  # seeded


def test_symptom_macro_f1_can_choose_the_checkpoint(tiny_corpus, tiny_model, tmp_path):
    settings = tiny_settings(tiny_corpus, tiny_model, epochs=1)
    settings = attrs.evolve(settings, train=attrs.evolve(settings.train, metric="symptom_macro_f1"))
    result = train(settings, load_dataset(settings.data), new_run(None, tmp_path), show_progress=False)
    assert result.metrics.best.metric == "symptom_macro_f1"
    assert result.metrics.best.value == pytest.approx(result.metrics.history[0].val_symptom_macro_f1)


def test_report_shows_decisions_and_detection(trained, tmp_path):
    _, _, run, _ = trained
    page = write_run_report(run.root, "test", tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Symptom detection (post level)" in page
    assert "correctly empty" in page  # absent decisions on no-evidence examples
    assert "validation F1 against the no-answer threshold" in page
    assert read_metrics(run.metrics).null_threshold is not None
