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
from evfeatures.decode import decide, decode
from evfeatures.settings import FeatureSettings
from evfeatures.windows import build_windows
from evmodel.loading import load_tokenizer
from evtrain.bench import runner, worker
from evtrain.bench.hardware import batch_flops, encoder_flops_per_token, matmul_peak, peak_rss_mib
from evtrain.bench.options import BenchOptions
from evtrain.bench.ours import epoch_examples
from evtrain.bench.profile import ATTENTION_RANGE, CATEGORIES, EVAL_CATEGORIES, FORWARD_RANGE, classify, classify_forward
from evtrain.bench.recipe import postprocess_predictions, prepare_eval_features, prepare_train_features, tune_null_threshold
from evtrain.metrics import squad_v2_scores
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
    recipe, no_odds = postprocess_predictions(
        examples, features, start, end, n_best_size=FEATURES.n_best_size, max_answer_length=FEATURES.max_answer_length
    )
    ours = decode(examples, windows, torch.from_numpy(start), torch.from_numpy(end), FEATURES)
    assert {p.example_id: p.text for p in ours} == recipe
    assert no_odds == {}
    # The SQuAD 2.0 path: utils_qa's null odds are evspan's na_score, and "" exactly where evspan decides "absent".
    threshold = float(rng.normal())
    answers, odds = postprocess_predictions(
        examples,
        features,
        start,
        end,
        n_best_size=FEATURES.n_best_size,
        max_answer_length=FEATURES.max_answer_length,
        version_2_with_negative=True,
        null_score_diff_threshold=threshold,
    )
    for p in ours:
        assert odds[p.example_id] == pytest.approx(p.na_score, abs=1e-5)
        present = decide(p, threshold, 1).present
        assert answers[p.example_id] == (p.text if present else "")


def _null_window_logits(tokenizer, examples):
    """Features and random logits for ``examples``; the windows of the example with most windows get CLS logits above every span."""
    features = prepare_eval_features(examples, tokenizer, FEATURES)
    index = features["example_index"]
    rng = np.random.default_rng(0)
    start = rng.normal(size=(len(index), FEATURES.max_length)).astype(np.float32)
    end = rng.normal(size=(len(index), FEATURES.max_length)).astype(np.float32)
    start[:, 0] = end[:, 0] = -10.0  # CLS: "no answer here" is unlikely ...
    e = int(np.bincount(index).argmax())
    windows = np.flatnonzero(index == e)
    # ... except in every window of example e, each a different null score, the lowest in its last window.
    for k, w in enumerate(windows):
        start[w, 0] = end[w, 0] = 10.0 - k
    return features, start, end, e, windows


def test_recipe_null_path_answers_nothing_when_the_cls_dominates(tokenizer):
    examples = _examples(n=4)
    features, start, end, e, windows = _null_window_logits(tokenizer, examples)
    assert len(windows) >= 2
    kwargs = {"n_best_size": FEATURES.n_best_size, "max_answer_length": FEATURES.max_answer_length}
    plain, _ = postprocess_predictions(examples, features, start, end, **kwargs)
    answers, odds = postprocess_predictions(examples, features, start, end, version_2_with_negative=True, **kwargs)
    target = examples[e].id
    assert plain[target] != "" and answers[target] == ""
    # The null score is the lowest CLS start + end over the example's windows, not the first window's or the highest.
    null_score = min(float(start[w, 0] + end[w, 0]) for w in windows)
    assert null_score == pytest.approx(2 * (10.0 - (len(windows) - 1)))
    best_non_null = null_score - odds[target]
    assert 0 < odds[target] < 2 * 10.0 - best_non_null  # min over windows, not max
    windows_all = build_windows(examples, tokenizer, FEATURES)
    ours = {p.example_id: p for p in decode(examples, windows_all, torch.from_numpy(start), torch.from_numpy(end), FEATURES)}
    assert ours[target].null_score == pytest.approx(null_score)
    assert best_non_null == pytest.approx(ours[target].score, abs=1e-5)
    # The other examples' CLS is far below their spans: they keep their best span.
    for ex in examples:
        if ex.id != target:
            assert answers[ex.id] == plain[ex.id] != "" and odds[ex.id] < 0
    # A threshold above the null odds answers the example after all.
    lenient, _ = postprocess_predictions(
        examples, features, start, end, version_2_with_negative=True, null_score_diff_threshold=odds[target] + 1e-3, **kwargs
    )
    assert lenient[target] == plain[target]


def test_recipe_null_threshold_is_the_best_f1_one_and_matches_utils_qa_at_it(tokenizer):
    examples = _examples(n=4)
    features, start, end, e, _ = _null_window_logits(tokenizer, examples)
    kwargs = {"n_best_size": FEATURES.n_best_size, "max_answer_length": FEATURES.max_answer_length}
    best, odds = postprocess_predictions(
        examples, features, start, end, version_2_with_negative=True, null_score_diff_threshold=float("inf"), **kwargs
    )
    assert all(best.values())  # no threshold: every example keeps its best non-null answer
    # Half the examples have no gold answer (the CLS-dominant one among them): the tuned threshold must say "" to those it can.
    no_answer = {examples[e].id, examples[(e + 1) % len(examples)].id}
    golds = {ex.id: [] if ex.id in no_answer else [ex.answers[0].text] for ex in examples}
    threshold, figures = tune_null_threshold(best, odds, golds)
    sweep = squad_v2_scores(best, golds, odds)
    assert figures["f1"] == pytest.approx(sweep.best_f1)  # the best F1 any threshold reaches here
    assert figures["threshold"] == threshold and figures["n"] == len(examples)
    assert figures["no_ans_exact"] >= 50.0  # the CLS-dominant no-answer example is answered ""
    # Re-running utils_qa's post-processing at the tuned threshold gives the answers the figures were scored on.
    answers, _ = postprocess_predictions(
        examples, features, start, end, version_2_with_negative=True, null_score_diff_threshold=threshold, **kwargs
    )
    again = squad_v2_scores(answers, golds)
    assert (again.f1, again.exact, again.has_ans_f1, again.no_ans_exact) == pytest.approx(
        (figures["f1"], figures["exact_match"], figures["has_ans_f1"], figures["no_ans_exact"])
    )


def test_recipe_trains_on_the_examples_of_evspans_first_epoch(tokenizer):
    from evtrain.loop import epoch_windows
    from evtrain.settings import RunSettings

    answered = _examples(n=6)
    no_answer = [attrs.evolve(ex, id=f"{ex.id}-none", answers=()) for ex in _examples(n=6, seed=1)]
    unknown = attrs.evolve(no_answer[0], id="unknown", unaligned_evidence=True)
    hard = attrs.evolve(no_answer[1], id="hard", hard_negative=True)
    examples = [*answered, *no_answer[2:], unknown, hard]
    settings = RunSettings()
    settings = attrs.evolve(settings, features=FEATURES, train=attrs.evolve(settings.train, no_answer_ratio=0.5, negative_window_ratio=1.0))
    chosen = epoch_examples(examples, settings)
    ids = {ex.id for ex in chosen}
    assert {ex.id for ex in answered} | {"hard"} <= ids and "unknown" not in ids
    assert len(ids) == len(answered) + 1 + round(0.5 * len(answered))
    # With every answer-less window kept, the loop's first epoch trains on exactly these examples' windows.
    windows = build_windows(examples, tokenizer, FEATURES)
    trained = {examples[i].id for i in windows.example_index[epoch_windows(windows, examples, settings, 0)]}
    assert trained == ids


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


def test_bench_report_has_every_figure_for_all_three_sides(tiny_corpus, tiny_model, tmp_path, monkeypatch):
    settings = tiny_settings(tiny_corpus, tiny_model)
    settings = attrs.evolve(settings, features=FEATURES)
    dataset = load_dataset(settings.data)
    options = BenchOptions(steps=3, rounds=1, batch_size=4, eval_examples=3, eval_repeats=2, plain_eval_repeats=1, profile_steps=1)

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
    assert [r["side"] for r in written["runs"]] == ["recipe_plain", "recipe_tuned", "evspan"]
    assert set(written["matmul_peak_gflops"]) == {"fp32", "bf16"}
    for run in written["runs"]:
        assert run["train"]["steps"] == 3
        assert run["eval"]["examples"] == 3
        # Evaluation is timed eval_repeats times (the plain recipe plain_eval_repeats); the reported time is the fastest pass.
        repeats = options.plain_eval_repeats if run["side"] == "recipe_plain" else options.eval_repeats
        assert len(run["eval"]["repeat_seconds"]) == repeats
        assert run["eval"]["seconds"] == min(run["eval"]["repeat_seconds"])
        # The step profile: every category, adding up to the profiled step.
        profile = run["profile"]
        assert profile["steps"] == 1 and set(profile["ms_per_step"]) == {key for key, _ in CATEGORIES}
        assert sum(profile["ms_per_step"].values()) == pytest.approx(profile["step_ms"], rel=1e-6)
        assert profile["ms_per_step"]["linear_forward"] > 0 and profile["ms_per_step"]["linear_backward"] > 0
        assert profile["ms_per_step"]["attention_forward"] > 0 and profile["ms_per_step"]["optimizer"] > 0
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
    plain, tuned, evspan = written["runs"]
    assert evspan["train"]["plan_matches_loop"]
    # evspan's evaluation forward profile: every category, adding up, the linear layers and the attention both seen.
    forward = evspan["eval_profile"]
    assert set(forward["ms_per_step"]) == {key for key, _ in EVAL_CATEGORIES}
    assert sum(forward["ms_per_step"].values()) == pytest.approx(forward["step_ms"], rel=1e-6)
    assert forward["ms_per_step"]["linear_forward"] > 0 and forward["ms_per_step"]["attention_forward"] > 0
    assert forward["ms_per_step"]["data"] > 0  # collating batches, gathering logits: outside the model
    for run in written["runs"]:
        # Every side evaluates the same windows, so the same matmul FLOPs (real tokens only).
        assert run["eval"]["real_tokens"] == evspan["eval"]["real_tokens"]
        assert run["eval"]["useful_flops"] == pytest.approx(evspan["eval"]["useful_flops"]) and run["eval"]["useful_flops"] > 0
        assert run["rates"]["eval_useful_gflops"] == pytest.approx(run["eval"]["useful_flops"] / run["eval"]["seconds"] / 1e9)
    # The ceilings: every FLOP at the bf16 peak, and evspan with nothing but its linear layers.
    med = written["summary"]["median"]
    ceilings = written["summary"]["ceilings"]
    assert ceilings["train_at_bf16_peak"] == pytest.approx(1 / med["recipe_tuned"]["train_useful_bf16_peak_fraction"])
    assert ceilings["eval_at_bf16_peak"] == pytest.approx(1 / med["recipe_tuned"]["eval_useful_bf16_peak_fraction"])
    headline = written["summary"]["ratio"]["recipe_tuned"]
    steps = written["summary"]["profile"]["evspan"]
    linear = steps["linear_forward"] + steps["linear_backward"]
    assert ceilings["train_linear_only"] == pytest.approx(headline["train_tokens_per_second"] * steps["step_ms"] / linear)
    assert ceilings["train_linear_only"] > headline["train_tokens_per_second"]
    assert ceilings["eval_linear_only"] > headline["eval_windows_per_second"]
    assert evspan["precision_peak"] == dtypes[0]  # the run's compute dtype, not a guess from its label
    assert plain["train"]["padded_tokens"] == 3 * 4 * FEATURES.max_length  # the plain recipe pads every window
    assert tuned["train"]["padded_tokens"] < plain["train"]["padded_tokens"]  # dynamic padding
    assert tuned["precision_peak"] == "bf16" and plain["precision_peak"] == "fp32"
    assert "group_by_length" in tuned["recipe"] and "DataCollatorWithPadding" in tuned["recipe"]
    for key in (
        "train_tokens_per_second",
        "eval_windows_per_second",
        "train_executed_bf16_peak_fraction",
        "val_f1",
        "val_span_f1",
        "peak_rss_mib",
    ):
        assert {"target", "reached", "met"} <= set(written["summary"]["targets"][key])
    # The headline ratios are against the tuned recipe.
    ratio = written["summary"]["ratio"]["recipe_tuned"]["train_tokens_per_second"]
    assert written["summary"]["targets"]["train_tokens_per_second"]["reached"] == pytest.approx(ratio)
    # Quality on every side: SQuAD 2.0 over the same scored examples, each at its own tuned null threshold.
    recipe_run, evspan_run = tuned, evspan
    for run in written["runs"]:
        q = run["quality"]
        assert {"f1", "exact_match", "has_ans_f1", "no_ans_exact", "threshold", "best_f1_thresh", "n", "excluded"} <= set(q)
        assert q["f1"] == pytest.approx(q["best_f1"])  # the threshold applied is the best-F1 one
        assert q["n"] + q["excluded"] == 3
    for key in ("n", "has_ans_total", "no_ans_total", "excluded"):
        assert recipe_run["quality"][key] == evspan_run["quality"][key], key
    for run in written["runs"]:
        # Every side's best-span F1 over the same answerable examples (the tiny corpus has some).
        assert 0.0 <= run["quality"]["span_f1"] <= 100.0
        assert run["rates"]["val_span_f1"] == run["quality"]["span_f1"]
    span_gap = evspan["quality"]["span_f1"] - tuned["quality"]["span_f1"]
    assert written["summary"]["span_f1_gap"] == pytest.approx(span_gap)
    assert written["summary"]["targets"]["val_span_f1"]["met"] == (span_gap >= -1.0)
    # The recipe trains on the example set of evspan's first epoch.
    assert recipe_run["train"]["examples"] == evspan_run["train"]["examples"]
    for key in ("n", "has_ans_total", "no_ans_total", "excluded"):
        assert plain["quality"][key] == evspan_run["quality"][key], key
    for side in ("recipe_plain", "recipe_tuned", "evspan"):
        for key in ("val_has_ans_f1", "val_no_ans_exact", "val_null_threshold"):
            assert key in written["summary"]["median"][side]
    text = console.export_text()
    for shown in (
        "train tok/s",
        "eval windows/s",
        "val F1",
        "NoAns",
        "peak RSS MiB",
        "recipe tuned",
        "Where a training step's time goes",
        "attention, backward",
        "val span F1",
        "Where an evaluation forward pass's time goes",
        "How far the ratios against the tuned recipe can go",
        "linear only",
    ):
        assert shown in text, shown


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


def test_tuned_recipe_predictions_are_put_back_in_window_order(tiny_model, tokenizer, tmp_path):
    # With group_by_length, transformers 5's Trainer.predict visits the windows in a length-grouped order;
    # scoring them against the wrong windows would make the tuned recipe's quality meaningless.
    from transformers import AutoModelForQuestionAnswering, DataCollatorWithPadding

    from evtrain.bench.recipe import TUNED, Hyper, _in_window_order, _prediction_order, _trainer, _Windows

    features = prepare_eval_features(_examples(), tokenizer, FEATURES, pad=False)
    data = _Windows(features, ("input_ids", "attention_mask", "token_type_ids"))
    fp32 = attrs.evolve(TUNED, bf16=False)  # exact comparison: the order is what is tested, not bf16

    hyper = Hyper(batch_size=4, eval_batch_size=4, learning_rate=1e-4, weight_decay=0.0, warmup_steps=0, max_grad_norm=1.0, seed=3)
    trainer = _trainer(tiny_model, tokenizer, fp32, hyper, data, DataCollatorWithPadding(tokenizer), [], tmp_path, 1)
    order = _prediction_order(trainer, data)
    assert order is not None and order != sorted(order)  # the Trainer really reorders
    start = _in_window_order(trainer.predict(data).predictions[0], order)
    model = AutoModelForQuestionAnswering.from_pretrained(tiny_model).eval()
    model.load_state_dict(trainer.model.state_dict())
    for w in range(len(data)):
        item = {k: torch.tensor([v]) for k, v in data[w].items()}
        with torch.no_grad():
            expected = model(**item).start_logits[0].numpy()
        np.testing.assert_allclose(start[w, : len(expected)], expected, rtol=1e-4, atol=1e-5)


def test_profile_counts_matmuls_inside_custom_backward_nodes_where_they_belong() -> None:
    """evspan's own autograd Functions: the GELU-linear's matmuls are linear backward, the flash attention's attention backward."""
    node = "autograd::engine::evaluate_function: "
    assert classify("aten::mm", [node + "GeluLinearFunctionBackward"]) == "linear_backward"
    assert classify("aten::gelu", [node + "GeluLinearFunctionBackward"]) == "elementwise"
    assert (
        classify("aten::_scaled_dot_product_flash_attention_for_cpu_backward", [node + "Fp32FlashAttentionBackward"])
        == "attention_backward"
    )
    assert classify("aten::bmm", [node + "ExplicitAttentionBackward"]) == "attention_backward"
    assert classify("aten::mm", [node + "MmBackward0"]) == "linear_backward"


def test_forward_profile_tells_linear_layers_attention_and_bookkeeping_apart() -> None:
    """An evaluation pass: the fused oneDNN linears (also inside self-attention) are linear, the attention's matmuls and
    softmax are attention, and what runs outside the model (collating, gathering logits) is data."""
    inside = [ATTENTION_RANGE, FORWARD_RANGE]
    assert classify_forward("mkldnn::_linear_pointwise", [FORWARD_RANGE]) == "linear_forward"
    assert classify_forward("mkldnn::_linear_pointwise", inside) == "linear_forward"
    assert classify_forward("aten::bmm", ["aten::matmul", *inside]) == "attention_forward"
    assert classify_forward("aten::_softmax", ["aten::softmax", *inside]) == "attention_forward"
    assert classify_forward("aten::native_layer_norm", ["aten::layer_norm", FORWARD_RANGE]) == "elementwise"
    assert classify_forward("aten::copy_", ["aten::index_put_"]) == "data"
    assert classify_forward(FORWARD_RANGE, []) == "overhead"
    assert {classify_forward(name, [FORWARD_RANGE]) for name in ("aten::add", "aten::bernoulli_")} <= {key for key, _ in EVAL_CATEGORIES}
