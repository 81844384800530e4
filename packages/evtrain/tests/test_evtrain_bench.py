"""invoke bench: the recipe side sees the same windows and decodes like evspan; the report holds every figure."""

import json
import random

import attrs
import numpy as np
import pytest
import torch
from evtrain_fixtures import EVIDENCE, FILLER, tiny_settings
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from evdata.config import SettingsError
from evdata.dataset import load_dataset
from evdata.records import Answer, QAExample, symptom_question
from evfeatures.decode import decode
from evfeatures.settings import FeatureSettings
from evfeatures.windows import build_windows
from evmodel.loading import load_tokenizer
from evtrain.bench import runner, worker
from evtrain.bench.hardware import batch_flops, encoder_flops_per_token, matmul_peak, peak_rss_mib
from evtrain.bench.options import BenchOptions
from evtrain.bench.recipe import postprocess_predictions, prepare_eval_features, prepare_train_features
from evtrain.records import read_metrics

FEATURES = FeatureSettings(max_length=64, doc_stride=16, max_answer_length=30)


def _examples(n: int = 8, seed: int = 0) -> list[QAExample]:
    """Posts long enough for several windows, each with one evidence sentence at a random place."""
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        symptom = sorted(EVIDENCE)[i % len(EVIDENCE)]
        evidence = rng.choice(EVIDENCE[symptom])
        sentences = rng.sample(FILLER * 3, k=4 + 2 * i)
        at = rng.randrange(len(sentences) + 1)
        before = " ".join(sentences[:at])
        start = len(before) + (1 if before else 0)
        context = " ".join([*sentences[:at], evidence, *sentences[at:]])
        answer = Answer(text=evidence, start=start, end=start + len(evidence), symptom=symptom)
        examples.append(
            QAExample(
                id=f"p{i}::{symptom}",
                post_id=f"p{i}",
                question=symptom_question(symptom),
                context=context,
                answers=(answer,),
                symptom=symptom,
            )
        )
    return examples


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return load_tokenizer(tiny_model)


def test_recipe_windows_are_evspans_windows_padded(tokenizer):
    examples = _examples()
    ours = build_windows(examples, tokenizer, FEATURES)
    recipe = prepare_train_features(examples, tokenizer, FEATURES)
    evaluation = prepare_eval_features(examples, tokenizer, FEATURES)
    assert len(ours) > len(examples)  # several windows per post, so stride and labels are exercised
    assert recipe["input_ids"].shape == (len(ours), FEATURES.max_length)
    np.testing.assert_array_equal(evaluation["example_index"], ours.example_index)
    for w in range(len(ours)):
        real = recipe["attention_mask"][w].astype(bool)
        np.testing.assert_array_equal(recipe["input_ids"][w][real], ours.input_ids[w])
        assert (recipe["input_ids"][w][~real] == tokenizer.pad_token_id).all()
        # One answer per example: the recipe's first-answer labels are evspan's labels.
        assert (recipe["start_positions"][w], recipe["end_positions"][w]) == (ours.start_positions[w], ours.end_positions[w])
        context = [k for k, o in enumerate(evaluation["offset_mapping"][w]) if o is not None]
        assert context == np.flatnonzero(ours.offsets[w][:, 0] >= 0).tolist()


@given(seed=st.integers(0, 2**32 - 1))
def test_recipe_postprocessing_and_evspan_decode_agree_on_the_same_logits(tokenizer, seed):
    examples = _examples(n=5, seed=seed % 7)
    windows = build_windows(examples, tokenizer, FEATURES)
    features = prepare_eval_features(examples, tokenizer, FEATURES)
    rng = np.random.default_rng(seed)
    width = FEATURES.max_length
    start = rng.normal(size=(len(windows), width)).astype(np.float32)
    end = rng.normal(size=(len(windows), width)).astype(np.float32)
    # Padding positions get logits no real token beats, as a trained model's would rarely matter there.
    padding = np.arange(width)[None, :] >= windows.lengths[:, None]
    start[padding] = -1e9
    end[padding] = -1e9
    recipe = postprocess_predictions(
        examples, features, start, end, n_best_size=FEATURES.n_best_size, max_answer_length=FEATURES.max_answer_length
    )
    ours = decode(examples, windows, torch.from_numpy(start), torch.from_numpy(end), FEATURES)
    assert {p.example_id: p.text for p in ours} == recipe


def test_flop_count_of_a_padded_batch_exceeds_the_real_tokens_count(tiny_model):
    from evmodel.loading import load_config

    config = load_config(tiny_model)
    per_token = encoder_flops_per_token(config, 64, training=True)
    assert per_token == 3 * encoder_flops_per_token(config, 64, training=False)
    assert batch_flops(config, [64, 64]) == pytest.approx(2 * 64 * per_token)
    assert batch_flops(config, [10, 64], width=64) > batch_flops(config, [10, 64])


def test_matmul_peak_and_memory_are_measured():
    peak = matmul_peak(torch.float32, seconds_per_shape=0.01, shapes=((64, 64, 64), (128, 64, 32)))
    assert peak["gflops"] > 0 and peak["shape"] in peak["per_shape"]
    assert peak_rss_mib() > 10


def test_options_name_the_bad_field():
    with pytest.raises(ValueError, match="steps: must be >= 1"):
        BenchOptions(steps=0)


def test_bench_report_has_every_figure_for_both_sides(tiny_corpus, tiny_model, tmp_path, monkeypatch):
    settings = tiny_settings(tiny_corpus, tiny_model)
    settings = attrs.evolve(settings, features=FEATURES)
    dataset = load_dataset(settings.data)
    options = BenchOptions(steps=2, rounds=1, batch_size=4, eval_examples=3, eval_repeats=2)

    def fast_peak(dtype, **kwargs):
        return matmul_peak(dtype, seconds_per_shape=0.01, shapes=((64, 64, 64),))

    dtypes = []

    def in_process(side, round_index, spec, workdir, timeout):
        # The child's command line, run in this process to keep the test fast.
        out = workdir / f"{round_index}-{side}"
        out.mkdir()
        assert worker.main([str(spec), side, str(out / "result.json"), str(out)]) == 0
        if side == "evspan":
            dtypes.append(read_metrics(out / "evspan-run" / "metrics.json").precision_dtype)
        return json.loads((out / "result.json").read_text())

    monkeypatch.setattr("evtrain.bench.hardware.matmul_peak", fast_peak)
    monkeypatch.setattr(runner, "_run_child", in_process)
    console = Console(record=True, width=160)
    report = runner.run_bench(settings, options, dataset, output_dir=tmp_path / "bench", console=console)

    written = json.loads(next((tmp_path / "bench").glob("*.json")).read_text())
    assert written["summary"] == json.loads(json.dumps(report["summary"]))
    assert [r["side"] for r in written["runs"]] == ["recipe", "evspan"]
    assert set(written["matmul_peak_gflops"]) == {"fp32", "bf16"}
    for run in written["runs"]:
        assert run["train"]["steps"] == 2
        assert run["eval"]["examples"] == 3
        # Evaluation is timed eval_repeats times; the reported time is the fastest pass.
        assert len(run["eval"]["repeat_seconds"]) == options.eval_repeats == 2
        assert run["eval"]["seconds"] == min(run["eval"]["repeat_seconds"])
        assert run["train"]["real_tokens"] <= run["train"]["padded_tokens"]
        assert run["peak_rss_mib"] > 0 and run["precision"]
        for key in (
            "train_tokens_per_second",
            "train_windows_per_second",
            "eval_tokens_per_second",
            "eval_windows_per_second",
            "train_executed_peak_fraction",
            "val_f1",
        ):
            assert run["rates"][key] >= 0, key
    evspan = written["runs"][1]
    assert evspan["train"]["plan_matches_loop"]
    assert evspan["precision_peak"] == dtypes[0]  # the run's compute dtype, not a guess from its label
    assert written["runs"][0]["train"]["padded_tokens"] == 2 * 4 * FEATURES.max_length  # the recipe pads every window
    for key in ("train_tokens_per_second", "eval_tokens_per_second", "val_f1", "peak_rss_mib"):
        assert {"target", "reached", "met"} <= set(written["summary"]["targets"][key])
    text = console.export_text()
    assert "train tokens/s" in text and "val F1" in text and "peak RSS MiB" in text


def test_attention_dropout_lever_sets_only_attention_probabilities(tiny_model):
    from evmodel.qa import EvidenceQA
    from evmodel.settings import ModelSettings
    from evtrain.components import set_attention_dropout
    from evtrain.settings import RunSettings

    model = EvidenceQA.from_encoder(tiny_model, ModelSettings(), seed=0)
    assert set_attention_dropout(model, 0.0) == model.config.num_hidden_layers
    rates = {name: m.p for name, m in model.named_modules() if isinstance(m, torch.nn.Dropout)}
    assert all(p == 0.0 for name, p in rates.items() if name.endswith("attention.self.dropout"))
    assert all(p == 0.1 for name, p in rates.items() if not name.endswith("attention.self.dropout"))
    with pytest.raises(SettingsError, match=r"train\.attention_dropout: must be < 1, got 1\.0"):
        RunSettings().with_changes({"train.attention_dropout": 1.0})
