"""End to end with a tiny encoder: train, evaluate, predict, reload, evaluate again (identical numbers)."""

import json

import attrs
import pytest
import torch
from evtrain_fixtures import tiny_settings

from evdata.dataset import load_dataset
from evtrain.api import run_evaluation, run_prediction
from evtrain.loop import NonFiniteLossError, train
from evtrain.records import read_metrics, read_predictions, read_split_evaluation
from evtrain.runs import RunPaths, new_run, resolve_run, update_latest


@pytest.fixture(scope="module")
def trained(tiny_corpus, tiny_model, tmp_path_factory):
    settings = tiny_settings(tiny_corpus, tiny_model, epochs=2)
    dataset = load_dataset(settings.data)
    root = tmp_path_factory.mktemp("runs")
    run = new_run(None, root)
    update_latest(run, root)
    result = train(settings, dataset, run, show_progress=False)
    return settings, dataset, run, result, root


def test_run_directory_is_complete(trained):
    _, _, run, _, root = trained
    for path in (
        run.model / "config.json",
        run.model / "model.safetensors",
        run.settings,
        run.metrics,
        run.log,
        run.curves,
        run.split_predictions("test"),
    ):
        assert path.is_file(), path
    metrics = read_metrics(run.metrics)
    assert len(metrics.history) == 2
    assert metrics.test.n > 0 and "first_sentence" in metrics.baselines["test"]
    assert resolve_run("latest", root).root == run.root.resolve()
    # Plain JSON for people and jq, with the documented keys.
    raw = json.loads(run.split_predictions("test").read_text())
    for r in raw:
        assert set(r) >= {"example_id", "post_id", "question", "prediction_text", "start", "end", "score", "gold_texts"}
    assert len(read_predictions(run.split_predictions("test"))) == metrics.test.n


def test_model_directory_carries_a_model_card(trained):
    _, _, run, result, _ = trained
    card = (run.model / "README.md").read_text()
    header = card.split("---")[1]
    assert "pipeline_tag: question-answering" in header and "library_name: transformers" in header
    assert "not a diagnostic" in card.lower().replace("**", "")
    assert f"{result.metrics.test.f1:.2f}" in card


def test_evaluate_reproduces_recorded_test_metrics(trained):
    settings, dataset, run, result, _ = trained
    again = run_evaluation(RunPaths(run.root), "test", dataset, settings)
    assert again.scores == result.metrics.test
    # and once more after reloading everything from disk: still identical
    assert run_evaluation(RunPaths(run.root), "test", dataset, settings).scores == result.metrics.test
    assert read_split_evaluation(run.split_metrics("test")).scores == result.metrics.test


def test_predict_new_posts(trained, tmp_path):
    _, _, run, _, _ = trained
    posts = tmp_path / "new.jsonl"
    long_text = " ".join(["The weather here is cold and rainy."] * 60 + ["I barely sleep anymore, maybe three hours a night."])
    posts.write_text(
        json.dumps({"post_id": "n1", "text": "I feel empty and sad every single day. We had pasta."})
        + "\n"
        + json.dumps({"post_id": "n2", "text": long_text})
        + "\n"
    )
    out = run_prediction(RunPaths(run.root), posts, tmp_path / "out.json", show_progress=False)
    records = json.loads(out.read_text())
    assert {r["post_id"] for r in records} == {"n1", "n2"}
    assert len(records) == 2 * 9  # symptom mode: one record per post and symptom
    texts = {"n1": "I feel empty and sad every single day. We had pasta.", "n2": long_text}
    for r in records:
        assert texts[r["post_id"]][r["start"] : r["end"]] == r["prediction_text"]
    assert max(r["windows"] for r in records if r["post_id"] == "n2") > 1


def test_early_stopping_and_max_steps(tiny_corpus, tiny_model, tmp_path):
    # learning rate ~0 so validation cannot improve after the first evaluation
    settings = tiny_settings(tiny_corpus, tiny_model, epochs=6, learning_rate=1e-12, patience=1, warmup_ratio=0.0)
    result = train(settings, load_dataset(settings.data), new_run(tmp_path / "es"), show_progress=False, evaluate_test=False)
    assert result.metrics.stopped_early
    assert len(result.metrics.history) == 2
    settings = tiny_settings(tiny_corpus, tiny_model, epochs=3, max_steps=3)
    result = train(settings, load_dataset(settings.data), new_run(tmp_path / "ms"), show_progress=False, evaluate_test=False)
    assert result.metrics.optimizer_steps == 3


def test_empty_question_mode_end_to_end(tiny_corpus, tiny_model, tmp_path):
    settings = tiny_settings(tiny_corpus, tiny_model, epochs=1)
    settings = attrs.evolve(settings, data=attrs.evolve(settings.data, question_mode="empty"))
    dataset = load_dataset(settings.data)
    result = train(settings, dataset, new_run(tmp_path / "empty"), show_progress=False)
    assert all(ex.question == "" for ex in dataset.examples)
    assert result.metrics.test.n == len(dataset.split.examples["test"])


def test_non_finite_loss_names_step_and_examples(tiny_corpus, tiny_model, tmp_path, monkeypatch):
    from evmodel.qa import EvidenceQA

    original = EvidenceQA.forward

    def poisoned(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        return attrs.evolve(out, loss=out.loss * torch.tensor(float("nan")))

    monkeypatch.setattr(EvidenceQA, "forward", poisoned)
    settings = tiny_settings(tiny_corpus, tiny_model, epochs=1)
    with pytest.raises(NonFiniteLossError, match=r"step 1.*examples in the batch: p\d+"):
        train(settings, load_dataset(settings.data), new_run(tmp_path / "nan"), show_progress=False)
