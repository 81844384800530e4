"""Training and inference on a CUDA GPU: one seed one result, mixed precision, and checkpoints that move to a CPU.

Skipped where torch sees no GPU (CI); the rest of the suite runs on CUDA too there, since the tiny settings
leave ``train.device`` at ``auto``.
"""

import attrs
import pytest
import torch
from evtrain_fixtures import tiny_settings
from safetensors.torch import load_file

from evdata.dataset import load_dataset
from evtrain.api import run_evaluation
from evtrain.loop import train
from evtrain.records import read_predictions
from evtrain.runs import new_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _train(settings, root):
    dataset = load_dataset(settings.data)
    run = new_run(None, root)
    return dataset, train(settings, dataset, run, show_progress=False)


def _losses(result):
    return [(row.step, row.train_loss, row.val_f1, row.val_threshold) for row in result.metrics.history]


def test_one_seed_gives_one_run_on_cuda(tiny_corpus, tiny_model, tmp_path):
    """bf16 autocast with deterministic kernels (the default): two runs agree to the bit, weights included."""
    settings = tiny_settings(tiny_corpus, tiny_model, device="cuda", precision="bf16", epochs=2)
    _, a = _train(settings, tmp_path / "a")
    _, b = _train(settings, tmp_path / "b")
    assert a.metrics.device.startswith("cuda") and a.metrics.precision_dtype == "bf16"
    assert _losses(a) == _losses(b)
    assert a.metrics.test == b.metrics.test
    wa, wb = load_file(a.run.model / "model.safetensors"), load_file(b.run.model / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_fp16_trains_with_a_grad_scaler_and_saves_fp32_weights(tiny_corpus, tiny_model, tmp_path):
    settings = tiny_settings(tiny_corpus, tiny_model, device="cuda", precision="fp16", epochs=2)
    _, result = _train(settings, tmp_path)
    assert result.metrics.precision_dtype == "fp16"
    losses = [row.train_loss for row in result.metrics.history]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    weights = load_file(result.run.model / "model.safetensors")
    assert {w.dtype for w in weights.values() if w.is_floating_point()} == {torch.float32}


def test_a_checkpoint_trained_on_cuda_evaluates_alike_on_a_cpu(tiny_corpus, tiny_model, tmp_path):
    """fp32 on both devices: the same answers, scores equal up to float rounding."""
    settings = tiny_settings(tiny_corpus, tiny_model, device="cuda", epochs=2)
    dataset, result = _train(settings, tmp_path)
    run = result.run
    on_gpu = run_evaluation(run, "test", dataset, settings)
    gpu = {p.example_id: p for p in read_predictions(run.split_predictions("test"))}
    on_cpu = run_evaluation(run, "test", dataset, attrs.evolve(settings, train=attrs.evolve(settings.train, device="cpu")))
    cpu = {p.example_id: p for p in read_predictions(run.split_predictions("test"))}
    assert on_gpu.scores == result.metrics.test
    assert gpu.keys() == cpu.keys()
    for key, g in gpu.items():
        c = cpu[key]
        assert (g.start, g.end, g.present) == (c.start, c.end, c.present), key
        for x, y in ((g.score, c.score), (g.null_score, c.null_score)):
            assert (x is None) == (y is None) and (x is None or x == pytest.approx(y, abs=1e-3)), key
    assert on_cpu.scores == on_gpu.scores
